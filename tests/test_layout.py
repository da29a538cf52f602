"""Guardrails on the package's shape that no linter checks (STYLE.md section 4)."""

from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "django_redisjobs"
MAX_MODULE_LINES = 400


@pytest.mark.parametrize(
    "module",
    sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")),
)
def test_no_module_is_longer_than_400_lines(module: str) -> None:
    lines = (PACKAGE / module).read_text("utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, (
        f"{module} has {lines} lines; split it by responsibility."
    )
