"""The release artefacts: the sdist and the wheel hold the whole app (Lua scripts,
templates, static files), and the wheel installed in a clean venv runs a job.

scripts/test builds dist/ once (``python -m build``) and passes the wheel in
``REDISJOBS_TEST_WHEEL``; run alone, these tests build their own with hatchling.
The clean venv installs the wheel's dependencies from the package index (pip's
cache makes later runs quick).
"""

import os
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

import pytest

from tests.servers import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.packaging]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_redisjobs"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(sdist, wheel): scripts/test's dist/ if given, else freshly built here."""
    given = os.environ.get("REDISJOBS_TEST_WHEEL")
    out = Path(given).parent if given else tmp_path_factory.mktemp("dist")
    if not given:
        subprocess.run(
            [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    (sdist,) = out.glob("django_redisjobs-*.tar.gz")
    (wheel,) = out.glob("django_redisjobs-*.whl")
    yield sdist, wheel


def package_files() -> set[str]:
    """Every file of the app a checkout has, as a path from the repo root."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_wheel_holds_every_file_of_the_app(dist: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dist[1]) as wheel:
        names = set(wheel.namelist())
    missing = sorted(package_files() - names)
    assert not missing, f"the wheel lacks {missing}"
    assert any(n.startswith("django_redisjobs/lua/") for n in names)
    assert not any(n.startswith(("tests/", "bench/", "testproject/")) for n in names)


def test_sdist_holds_every_file_of_the_app_and_the_changelog(
    dist: tuple[Path, Path],
) -> None:
    with tarfile.open(dist[0]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    missing = sorted(package_files() - names)
    assert not missing, f"the sdist lacks {missing}"
    assert {"CHANGELOG.md", "README.md", "pyproject.toml"} <= names


def test_wheel_metadata_says_which_pythons_and_djangos(dist: tuple[Path, Path]) -> None:
    with zipfile.ZipFile(dist[1]) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(name).decode())
    assert metadata["Requires-Python"] == ">=3.11"
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Framework :: Django :: 5.2" in classifiers


SMOKE_FILES = {
    "manage.py": """
        import sys
        from django.core.management import execute_from_command_line
        execute_from_command_line(sys.argv)
    """,
    "smokeproj/__init__.py": "",
    "smokeproj/settings.py": """
        import os
        SECRET_KEY = "smoke"
        USE_TZ = True
        INSTALLED_APPS = ["django_redisjobs", "smokeapp"]
        REDISJOBS = {
            "REDIS_URL": os.environ["SMOKE_REDIS_URL"],
            "PREFIX": "wheel-smoke",
            "DURABILITY_WARNING": False,
        }
    """,
    "smokeapp/__init__.py": "",
    "smokeapp/tasks.py": """
        from django_redisjobs import background, current_job

        @background(queue="smoke")
        def double(x):
            current_job().set_progress(0.5)
            return 2 * x
    """,
    "smoke.py": """
        import datetime, os, subprocess, sys
        os.environ["DJANGO_SETTINGS_MODULE"] = "smokeproj.settings"
        import django
        django.setup()
        import django_redisjobs
        from smokeapp.tasks import double
        handle = double.delay(21)
        worker = subprocess.run(
            [sys.executable, "manage.py", "runworker", "--burst"],
            capture_output=True, text=True, check=True,
        )
        handle.wait(timeout=datetime.timedelta(seconds=10))
        print(django_redisjobs.__file__)
        print(worker.stdout.strip())
        print(handle.status.value, handle.result, handle.progress)
    """,
}


# pip fetches Django, redis, hiredis, croniter and django-redis (cached after once).
@pytest.mark.timeout(300)
def test_wheel_installed_in_a_clean_venv_runs_a_job(
    dist: tuple[Path, Path], tmp_path: Path, redis_server: RedisServer
) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(dist[1])],
        check=True,
        capture_output=True,
    )
    project = tmp_path / "project"
    for name, text in SMOKE_FILES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(textwrap.dedent(text))

    run = subprocess.run(
        [python, "smoke.py"],
        cwd=project,
        env={"PATH": os.environ["PATH"], "SMOKE_REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert run.returncode == 0, run.stderr
    installed_at, summary, outcome = run.stdout.strip().splitlines()
    assert installed_at.startswith(str(venv))
    assert summary == "Burst done: 1 job ended (1 succeeded), in 1 attempt."
    assert outcome == "succeeded 42 1.0"
