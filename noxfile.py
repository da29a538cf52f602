"""The test matrix of scripts/test: the whole suite on each Django line.

- ``tests-django5.2``: Django 5.2 LTS on the oldest Python (3.11 or newer) found.
- ``tests-django6``: the newest Django 6.x the package allows, on the newest
  Python 3.12 or newer found (Django 6 needs 3.12). When there is none, the leg
  is skipped and ``python noxfile.py --summary`` says so and why.

Interpreters are looked for on PATH (``python3.11`` ... ``python3.14``,
``python3``) and in pyenv's versions directory; each candidate is run, since
pyenv shims exist for versions that are not selected. Each leg has its own
virtualenv under ``.nox/``, reinstalled only when pyproject.toml changes. The
pytest arguments given to scripts/test reach pytest here (``nox -- ARGS``).
Results go to ``var/matrix/``: one line per leg, the coverage table, JUnit XML.
"""

import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import nox

ROOT = pathlib.Path(__file__).resolve().parent
RESULTS = ROOT / "var" / "matrix"
SUPPORTED = [(3, 11), (3, 12), (3, 13), (3, 14)]
DJANGO_6_MIN_PYTHON = (3, 12)
LEGS = {
    "django5.2": "Django>=5.2,<5.3",
    # pyproject's own upper bound keeps this to the 6.x lines the package allows.
    "django6": "Django>=6.0,<7",
}

nox.options.sessions = ["tests"]
nox.options.reuse_venv = "yes"
nox.options.download_python = "never"
nox.options.error_on_missing_interpreters = True


# A virtualenv's interpreter (scripts/test puts .venv/bin first on PATH) reads
# as no version: the legs are built from base interpreters.
_PROBE = "import sys; sys.prefix == sys.base_prefix and print(*sys.version_info[:2])"


def _version_of(python: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(  # noqa: S603 - a fixed interpreter probe
            [python, "-c", _PROBE],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return (int(out[0]), int(out[1])) if len(out) == 2 else None


def _pyenv_pythons() -> list[str]:
    root = os.environ.get("PYENV_ROOT") or str(pathlib.Path.home() / ".pyenv")
    versions = pathlib.Path(root) / "versions"
    if not versions.is_dir():
        return []
    return [str(p / "bin" / "python3") for p in sorted(versions.iterdir())]


def find_pythons() -> dict[tuple[int, int], str]:
    """One interpreter per supported minor version: the first found of each."""
    names = [f"python{major}.{minor}" for major, minor in SUPPORTED] + ["python3"]
    found: dict[tuple[int, int], str] = {}
    # Every match on PATH, not only the first: .venv/bin (first on PATH in
    # scripts/test) shadows the system interpreter it was made from.
    path = os.environ.get("PATH", "").split(os.pathsep)
    candidates: list[str | None] = [
        shutil.which(name, path=d) for name in names for d in path
    ]
    candidates += _pyenv_pythons()
    for candidate in filter(None, candidates):
        version = _version_of(candidate)
        if version in SUPPORTED and version not in found:
            found[version] = candidate
    return dict(sorted(found.items()))


def plan() -> tuple[dict[str, str | None], str]:
    """The interpreter of each leg (None: not run), and why a leg cannot run."""
    pythons = find_pythons()
    oldest = next(iter(pythons.values()), None)
    recent = [p for v, p in pythons.items() if v >= DJANGO_6_MIN_PYTHON]
    why = ""
    if oldest is None:
        why = "no Python 3.11 or newer was found on PATH or under pyenv"
    elif not recent:
        why = (
            "the Django 6 leg did not run: Django 6 needs Python 3.12 or newer, "
            "and only Python 3.11 was found (on PATH and under pyenv); install "
            "python3.12 or newer to run it"
        )
    return {"django5.2": oldest, "django6": recent[-1] if recent else None}, why


PYTHONS, WHY_NOT = plan()


def _install(session: nox.Session, leg: str) -> None:
    """Install the app and the test group, unless pyproject is unchanged."""
    venv = pathlib.Path(str(session.virtualenv.location))
    stamp = venv / ".redisjobs-stamp"
    want = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + LEGS[leg].encode()
    ).hexdigest()
    if stamp.exists() and stamp.read_text() == want:
        return
    session.install("-q", "--upgrade", "pip")
    session.install("-q", "-e", ".", "--group", "test", LEGS[leg])
    stamp.write_text(want)


def _record(session: nox.Session, leg: str, junit: pathlib.Path) -> None:
    """Write the leg's line for the summary and its coverage table."""
    counts = dict.fromkeys(("passed", "skipped", "xfailed", "failed"), 0)
    root = ET.parse(junit).getroot()  # noqa: S314 - pytest wrote it just now
    for case in root.iter("testcase"):
        tags = {child.tag: child for child in case}
        if "failure" in tags or "error" in tags:
            counts["failed"] += 1
        elif "skipped" in tags:
            xfail = tags["skipped"].get("type") == "pytest.xfail"
            counts["xfailed" if xfail else "skipped"] += 1
        else:
            counts["passed"] += 1
    versions = session.run(
        "python",
        "-c",
        "import sys, django; print(sys.version.split()[0], django.__version__)",
        silent=True,
    )
    python, django = str(versions).split()
    line = f"Python {python} x Django {django}: " + ", ".join(
        f"{n} {outcome}" for outcome, n in counts.items() if n or outcome == "failed"
    )
    coverage_file = RESULTS / f".coverage.{leg}"
    if coverage_file.exists():
        env = {"COVERAGE_FILE": str(coverage_file)}
        table = session.run(
            "coverage", "report", "-m", "--skip-covered", silent=True, env=env
        )
        (RESULTS / f"coverage-{leg}.txt").write_text(str(table))
        total_pc = session.run(
            "coverage", "report", "--format=total", silent=True, env=env
        )
        line += (
            f"; coverage {str(total_pc).strip()}% "
            f"(table in var/matrix/coverage-{leg}.txt)"
        )
    (RESULTS / f"{leg}.txt").write_text(line + "\n")
    session.log(line)


@nox.session(venv_backend="virtualenv")
@nox.parametrize(
    "python,leg",
    [(PYTHONS[leg] or False, leg) for leg in LEGS],
    ids=list(LEGS),
)
def tests(session: nox.Session, leg: str) -> None:
    """The whole pytest suite on one Django line (pytest arguments after --)."""
    if PYTHONS[leg] is None:
        session.skip(WHY_NOT)
    _install(session, leg)
    RESULTS.mkdir(parents=True, exist_ok=True)
    junit = RESULTS / f"junit-{leg}.xml"
    coverage_file = RESULTS / f".coverage.{leg}"
    for old in (junit, coverage_file):
        old.unlink(missing_ok=True)
    session.run(
        "pytest",
        f"--junitxml={junit}",
        *session.posargs,
        env={"COVERAGE_FILE": str(coverage_file)},
    )
    _record(session, leg, junit)


def summary() -> str:
    """Each leg's result, and a plain note for a leg that could not run."""
    lines = [
        (RESULTS / f"{leg}.txt").read_text().strip()
        for leg in LEGS
        if (RESULTS / f"{leg}.txt").exists()
    ]
    if WHY_NOT:
        lines.append(f"Note: {WHY_NOT}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if sys.argv[1:] == ["--plan"]:
        for leg, python in PYTHONS.items():
            sys.stdout.write(f"{leg}: {python or 'not run'}\n")
    elif sys.argv[1:] == ["--summary"]:
        sys.stdout.write(summary())
    else:
        sys.exit("usage: python noxfile.py --plan | --summary")
