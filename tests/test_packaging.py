"""The wheel, installed in a fresh venv, gives a working ``twistd mercure``.

Builds the wheel from the repository root (``python -m build --wheel``),
checks the twistd plugin is inside it, installs it with its dependencies
from the package index into a new virtual environment WITHOUT the system
site-packages, and runs that environment's ``twistd --help`` and
``mercure-token --help``.  Every subprocess has a timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 180
VENV_TIMEOUT = 120
PIP_TIMEOUT = 300
RUN_TIMEOUT = 60


def run(command: list[str], timeout: float, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("MERCURE_")}
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,
                                timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        output = [o.decode(errors="replace") if isinstance(o, bytes) else (o or "")
                  for o in (e.stdout, e.stderr)]
        pytest.fail(f"{' '.join(command)} timed out after {timeout}s:\n" + "\n".join(output))
    assert result.returncode == 0, (
        f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    )
    return result.stdout + result.stderr


def test_wheel_installs_a_working_twistd_plugin(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        BUILD_TIMEOUT, cwd=ROOT)
    wheels = list(dist.glob("mercure_twisted-*.whl"))
    assert len(wheels) == 1, list(dist.iterdir())
    wheel = wheels[0]

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "twisted/plugins/mercure_plugin.py" in names, sorted(names)
    # No stale dropin cache and no package __init__ that would shadow
    # Twisted's own twisted/ and twisted/plugins/ packages.
    assert "twisted/plugins/dropin.cache" not in names, sorted(names)
    assert "twisted/__init__.py" not in names and "twisted/plugins/__init__.py" not in names
    assert "mercure_twisted/tap.py" in names and "mercure_twisted/py.typed" in names
    assert not [n for n in names if n.startswith(("tests/", "src/"))], sorted(names)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "mercure-token" in archive.read(entry_points).decode()

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], VENV_TIMEOUT)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    run([str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
         str(wheel)], PIP_TIMEOUT, cwd=tmp_path)

    # Run from the temp dir: the repository's own twisted/plugins must not
    # be what makes the plugin visible.
    help_text = run([str(bindir / "twistd"), "--help"], RUN_TIMEOUT, cwd=tmp_path)
    commands = help_text.split("Commands:", 1)[-1]
    assert any(line.split()[:1] == ["mercure"] for line in commands.splitlines()), help_text

    plugin_help = run([str(bindir / "twistd"), "mercure", "--help"], RUN_TIMEOUT, cwd=tmp_path)
    assert "--publisher-jwt-key" in plugin_help, plugin_help
    assert any(line.split()[:1] == ["websub-bridge"] for line in commands.splitlines()), help_text
    bridge_help = run([str(bindir / "twistd"), "websub-bridge", "--help"], RUN_TIMEOUT, cwd=tmp_path)
    assert "--mercure-url" in bridge_help, bridge_help

    where = run([str(python), "-c", "import mercure_twisted, sys; print(mercure_twisted.__file__)"],
                RUN_TIMEOUT, cwd=tmp_path)
    assert str(venv) in where, f"mercure_twisted imported from outside the venv: {where}"

    token_help = run([str(bindir / "mercure-token"), "--help"], RUN_TIMEOUT, cwd=tmp_path)
    assert "usage: mercure-token" in token_help, token_help
