"""Finding the Python interpreter that runs the GeoAnomaly engine.

QGIS's own Python must never import torch or rasterio (their numpy and GDAL
clash with QGIS's), so the engine lives in its own environment and the plugin
only needs the path of that environment's interpreter. In order:

1. the interpreter chosen in the plugin's settings;
2. the ``GEOANOMALY_PYTHON`` environment variable;
3. the ``.venv`` of the source tree the plugin was loaded from (a development
   install is a symlink into the repository), or a venv installed beside the
   plugin (``<plugin>/.venv`` or ``<plugins folder>/.geoanomaly-venv``);
4. any ``python3`` / ``python`` on ``PATH`` that can ``import core``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .environment import engine_environment

ENV_VAR = "GEOANOMALY_PYTHON"
PLUGIN_DIR = Path(__file__).resolve().parent.parent  # the real folder (a dev install is a symlink to it)
INSTALLED_DIR = Path(__file__).absolute().parent.parent  # where QGIS loaded the plugin from

# Names of the venv folders looked for beside the plugin.
PLUGIN_VENV = ".venv"
SHARED_VENV = ".geoanomaly-venv"


@dataclass(frozen=True)
class EngineInterpreter:
    """An interpreter path and where it was found (shown in the settings dialog)."""

    python: str
    source: str


def _venv_python(venv: Path) -> Path:
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def candidate_venvs() -> list[tuple[Path, str]]:
    """Virtual environments that may hold the engine, nearest first."""
    candidates: list[tuple[Path, str]] = []
    # Development install: the plugin folder is (a symlink to) <repo>/geoanomaly_qgis.
    repo = PLUGIN_DIR.parent
    if (repo / "core" / "__init__.py").is_file():
        candidates.append((repo / ".venv", "the source tree's .venv"))
    candidates.append((INSTALLED_DIR / PLUGIN_VENV, "a venv inside the plugin folder"))
    candidates.append((INSTALLED_DIR.parent / SHARED_VENV, "a venv beside the plugin"))
    return candidates


def can_import_engine(python: str, timeout: float = 20.0) -> bool:
    """True when ``python`` starts and can ``import core`` (the engine package)."""
    try:
        completed = subprocess.run(
            [python, "-c", "import core, core.cli"],
            env=engine_environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=timeout,
            cwd=neutral_folder(),
            **_no_window(),
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return completed.returncode == 0


def find_engine_python(configured: str | None = None) -> EngineInterpreter | None:
    """The interpreter to run the engine with, or ``None`` when none is found.

    A path set explicitly (settings or ``GEOANOMALY_PYTHON``) is returned as long
    as the file exists, so that a broken engine gives its own error message
    instead of silently falling back to another one.
    """
    if configured:
        if Path(configured).is_file():
            return EngineInterpreter(configured, "the plugin settings")
    from_env = os.environ.get(ENV_VAR, "").strip()
    if from_env and Path(from_env).is_file():
        return EngineInterpreter(from_env, f"the {ENV_VAR} environment variable")
    for venv, source in candidate_venvs():
        # Keep the venv's own path (not the resolved symlink): that is what makes it a venv.
        python = _venv_python(venv)
        if python.is_file() and can_import_engine(str(python)):
            return EngineInterpreter(str(python), source)
    for name in ("python3", "python"):
        found = shutil.which(name)
        if found and can_import_engine(found):
            return EngineInterpreter(found, "PATH")
    return None


def install_instructions() -> str:
    """Copyable shell lines that create a venv beside the plugin and install the engine in it."""
    venv = INSTALLED_DIR.parent / SHARED_VENV
    engine_src = engine_sources()
    if sys.platform == "win32":
        python = venv / "Scripts" / "python.exe"
        return (
            "In a command prompt (not the OSGeo4W shell):\n"
            f'py -3 -m venv "{venv}"\n'
            f'"{python}" -m pip install -c "{engine_src / "constraints.txt"}" "{engine_src}"\n'
            "Then press 'Check engine' again."
        )
    python = venv / "bin" / "python"
    return (
        "In a terminal:\n"
        f"python3 -m venv '{venv}'\n"
        f"'{python}' -m pip install -c '{engine_src / 'constraints.txt'}' '{engine_src}'\n"
        "Then press 'Check engine' again (or set the interpreter path above to a\n"
        "Python environment that has the GeoAnomaly engine)."
    )


def engine_sources() -> Path:
    """The engine's sources: shipped in the plugin zip, or the repository of a development install."""
    shipped = PLUGIN_DIR / "engine_src"
    if (shipped / "pyproject.toml").is_file():
        return shipped
    return PLUGIN_DIR.parent


def neutral_folder() -> str:
    """The worker's working folder: ``python -m core`` would import a ``core/`` found in the current folder
    (QGIS's, which may be a source tree) instead of the installed engine."""
    return tempfile.gettempdir()


def _no_window() -> dict:
    """Keep a console window from flashing up on Windows."""
    if sys.platform == "win32":
        return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)}
    return {}
