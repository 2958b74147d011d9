"""`ruff check` and `ruff format --check` are clean on the package, the tests and the benches (the
rules: pyproject.toml's [tool.ruff]); `make lint` runs the same."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
TARGETS = ["src", "tests", "bench"]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]], ids=["check", "format"])
def test_ruff_is_clean(command):
    assert RUFF, "ruff is not installed (it is a dev dependency: pip install -e '.[dev]')"
    res = subprocess.run([RUFF, *command, *TARGETS], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]


def test_ruff_check_fails_on_a_real_error(tmp_path):
    """The check sees an undefined name and an unused import with the project's settings."""
    bad = tmp_path / "bad.py"
    bad.write_text("import os\n\n\ndef f():\n    return undefined_name\n")
    res = subprocess.run(
        [RUFF, "check", "--config", str(ROOT / "pyproject.toml"), str(bad)], capture_output=True, text=True
    )
    assert res.returncode == 1 and "F821" in res.stdout and "F401" in res.stdout
