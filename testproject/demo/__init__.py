"""Demo app: background functions that look like real work, and commands to run them."""
