"""The docs name every setting (with its default), runworker option (with its
help text), system check id, Lua script and job status, and no others."""

import ast
import inspect
import re
from importlib import resources
from pathlib import Path
from typing import Any, get_overloads

from django.core.management import load_command_class
from django.core.management.base import BaseCommand

from django_redisjobs.conf import DEFAULTS
from django_redisjobs.decorators import background
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


def settings_sections() -> dict[str, str]:
    """docs/settings.md's "## Keys" part: the text under each ``### KEY``."""
    keys_part = read_doc("settings.md").split("\n## Keys\n", 1)[1]
    keys_part = keys_part.split("\n## ", 1)[0]
    sections = re.split(r"^### (\S+)\s*$", keys_part, flags=re.MULTILINE)[1:]
    return dict(zip(sections[::2], sections[1::2], strict=True))


def test_settings_doc_documents_exactly_the_keys_conf_knows() -> None:
    documented = set(settings_sections())
    assert documented == set(DEFAULTS), (
        f"only in docs/settings.md: {sorted(documented - set(DEFAULTS))}; "
        f"only in conf.DEFAULTS: {sorted(set(DEFAULTS) - documented)}"
    )


def test_settings_doc_gives_each_key_the_default_conf_uses() -> None:
    wrong = {}
    for key, text in settings_sections().items():
        found = re.search(r"^- Default: `([^`]*)`", text, re.MULTILINE)
        assert found, f"docs/settings.md: {key} has no '- Default: `...`' line"
        if ast.literal_eval(found.group(1)) != DEFAULTS[key]:
            wrong[key] = (found.group(1), DEFAULTS[key])
    assert not wrong, f"docs/settings.md defaults differ from conf.py: {wrong}"


def option_sections() -> dict[str, str]:
    """docs/worker.md's "## Options" part: the text under each ``### `--opt ...` ``."""
    part = read_doc("worker.md").split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"^### `(--[\w-]+)[^`]*`\s*$", part, flags=re.MULTILINE)[1:]
    return dict(zip(sections[::2], sections[1::2], strict=True))


def runworker_actions() -> dict[str, Any]:
    command = load_command_class("django_redisjobs", "runworker")
    standard = long_options(BaseCommand(), "base")
    parser = command.create_parser("manage.py", "runworker")
    return {
        option: action
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in standard
    }


def squashed(text: str) -> str:
    return " ".join(text.split())


def test_worker_doc_has_a_section_for_exactly_the_runworker_options() -> None:
    documented, parsed = set(option_sections()), set(runworker_actions())
    assert documented == parsed, (
        f"only in docs/worker.md: {sorted(documented - parsed)}; "
        f"only in the parser: {sorted(parsed - documented)}"
    )


def test_worker_doc_opens_each_option_with_its_help_text() -> None:
    # The help text carries the option's default, so this also keeps defaults true.
    sections = option_sections()
    stale = [
        option
        for option, action in runworker_actions().items()
        if not squashed(sections.get(option, "")).startswith(squashed(action.help))
    ]
    assert not stale, f"docs/worker.md does not open with --help's text for {stale}"


CHECK_ID = re.compile(r"redisjobs\.[EW]\d{3}")
PACKAGE = Path(__file__).resolve().parent.parent / "django_redisjobs"
TESTS = Path(__file__).resolve().parent


def ids_in(paths: list[Path]) -> set[str]:
    return {m for p in paths for m in CHECK_ID.findall(p.read_text(encoding="utf-8"))}


def test_docs_name_exactly_the_check_ids_the_code_raises() -> None:
    in_code = ids_in(sorted(PACKAGE.rglob("*.py")))
    in_docs = ids_in([*sorted(DOCS.glob("*.md")), DOCS.parent / "README.md"])
    assert in_code, "no check ids found in the package"
    assert in_docs == in_code, (
        f"only in the docs: {sorted(in_docs - in_code)}; "
        f"only in the code: {sorted(in_code - in_docs)}"
    )


def test_every_check_id_is_asserted_by_some_test() -> None:
    this_file = Path(__file__).resolve()
    in_tests = ids_in([p for p in sorted(TESTS.glob("test_*.py")) if p != this_file])
    missing = sorted(ids_in(sorted(PACKAGE.rglob("*.py"))) - in_tests)
    assert not missing, f"no test expects the check ids {missing}"


def test_jobs_doc_tables_every_background_option() -> None:
    options = {
        name
        for overload in get_overloads(background)
        for name, param in inspect.signature(overload).parameters.items()
        if param.kind is inspect.Parameter.KEYWORD_ONLY
    }
    assert options, "no @background options found"
    rows = set(re.findall(r"^\| `(\w+)` \|", read_doc("jobs.md"), re.MULTILINE))
    missing = sorted(options - rows)
    assert not missing, f"docs/jobs.md's options table lacks {missing}"
