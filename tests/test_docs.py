"""The docs name every setting, runworker option, Lua script and job status."""

import inspect
import re
from importlib import resources
from pathlib import Path

from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from django_redisjobs.conf import DEFAULTS
from django_redisjobs.job import JobStatus
from django_redisjobs.queue import JobStore

DOCS = Path(__file__).resolve().parent.parent / "docs"


def read_doc(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def long_options(command: BaseCommand, name: str) -> set[str]:
    parser = command.create_parser("manage.py", name)
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--")
    }


def test_settings_doc_has_a_heading_for_every_default() -> None:
    text = read_doc("settings.md")
    headings = set(re.findall(r"^### (\S+)\s*$", text, re.MULTILINE))
    missing = sorted(set(DEFAULTS) - headings)
    assert not missing, f"docs/settings.md lacks '### KEY' headings for {missing}"


def test_worker_doc_names_every_runworker_option() -> None:
    command = load_command_class("django_redisjobs", "runworker")
    # Options every Django command has (--verbosity, --settings, ...) are
    # Django's to document.
    standard = long_options(BaseCommand(), "base")
    ours = long_options(command, "runworker") - standard
    assert ours, "runworker has no options of its own; the parser was not read"
    text = read_doc("worker.md")
    missing = sorted(
        option
        for option in ours
        if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text)
    )
    assert not missing, f"docs/worker.md does not mention {missing}"


def test_internals_doc_lists_every_lua_script() -> None:
    lua_dir = resources.files("django_redisjobs") / "lua"
    names = sorted(
        entry.name for entry in lua_dir.iterdir() if entry.name.endswith(".lua")
    )
    assert names, "no Lua scripts found in django_redisjobs/lua"
    text = read_doc("internals.md")
    missing = [name for name in names if name not in text]
    assert not missing, f"docs/internals.md does not name {missing}"


def test_jobs_doc_names_every_job_status() -> None:
    text = read_doc("jobs.md")
    missing = [status.value for status in JobStatus if f"`{status.value}`" not in text]
    assert not missing, f"docs/jobs.md does not name the statuses {missing}"


def test_internals_doc_says_what_every_store_method_raises() -> None:
    text = read_doc("internals.md")
    table = text.split("## Store errors", 1)[1].split("\n## ", 1)[0]
    methods = {
        name
        for name, _ in inspect.getmembers(JobStore, inspect.isfunction)
        if not name.startswith("_")
    }
    missing = sorted(m for m in methods if f"`{m}`" not in table)
    assert not missing, f"docs/internals.md 'Store errors' lacks {missing}"
