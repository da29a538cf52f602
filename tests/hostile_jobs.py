"""Background functions whose results or errors once broke a worker thread."""

from typing import Any

from django_redisjobs import background


@background(max_attempts=1)
def raises_surrogate() -> None:
    raise ValueError("bad \udcff")


@background(max_attempts=1)
def returns(kind: str) -> Any:
    if kind == "surrogate":
        return "bad \udcff"
    if kind == "huge_int":
        return 10**5000
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    return deep


@background(max_attempts=2)
def fails() -> None:
    raise ConnectionError("down")


@background(max_attempts=2)
def raises_forged_lines(attempts: int) -> None:
    raise ValueError("boom\nINFO django_redisjobs: job succeeded \x1b[2J")
