"""Installing the engine from inside QGIS: the commands, and how far along pip is.

The engine environment is a virtual environment beside the plugin
(``<plugins folder>/.geoanomaly-venv``, where :mod:`.discovery` looks for it),
made from the engine sources the plugin zip ships (``engine_src/``) with the
pinned versions of ``engine_src/constraints.txt``. Three steps, each one
process, run by the settings dialog (``geoanomaly_qgis/engine_install.py``)
with a progress bar, a log and Cancel:

1. ``python3 -m venv`` (skipped on "Update engine", when the environment exists);
2. ``pip install -c constraints.txt engine_src``: the engine and the pinned
   packages, torch from the build that suits the machine (CUDA when an NVIDIA
   GPU is found, else the CPU build, a much smaller download). pip always
   installs a local folder anew, so "Update engine" after a plugin upgrade
   installs the new engine even when its version number did not change;
3. Check engine (``python -m core info``) with the new environment.

Nothing here imports QGIS.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .discovery import INSTALLED_DIR, SHARED_VENV, _venv_python, engine_sources

# Where torch comes from. "auto": chosen from the machine; "pip": pip's own configuration (an in-house
# mirror); anything else is an index URL.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TORCH_CHOICES = ("auto", "pip")
LOG_NAME = "geoanomaly-engine-install.log"


@dataclass
class InstallStep:
    """One process of the install, with the words the progress bar shows while it runs."""

    title: str
    argv: list[str]
    share: float  # of the progress bar
    counts_packages: bool = False  # progress follows pip's "Collecting ..." lines


@dataclass
class InstallPlan:
    venv: Path
    python: Path
    log: Path
    steps: list[InstallStep]
    notes: list[str] = field(default_factory=list)  # said before the first step (torch build, sources)
    creates_venv: bool = True
    package_count: int = 20
    reuse_site: str | None = None  # linked in after the environment is made (write_reuse_link)


def engine_venv(plugin_dir: Path | None = None) -> Path:
    """The engine environment beside the plugin (one for every profile's copy of the plugin folder)."""
    return Path(plugin_dir or INSTALLED_DIR).parent / SHARED_VENV


def install_log(plugin_dir: Path | None = None) -> Path:
    return Path(plugin_dir or INSTALLED_DIR).parent / LOG_NAME


def base_python() -> str | None:
    """A Python to make the environment with (QGIS's own executable is QGIS, not Python)."""
    candidates = []
    if sys.platform == "win32":
        candidates += [str(Path(sys.prefix) / "python.exe"), shutil.which("py") or "", shutil.which("python") or ""]
    else:
        candidates += [shutil.which("python3") or "", shutil.which("python") or ""]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def nvidia_gpu() -> str | None:
    """The name of an NVIDIA GPU the driver reports, or None (no driver, no GPU)."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        listed = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    first = listed.stdout.strip().splitlines()[:1] if listed.returncode == 0 else []
    return first[0].split(" (UUID")[0] if first else None


def torch_source(choice: str = "auto", gpu: str | None = None) -> tuple[list[str], str]:
    """pip options for torch, and the sentence that tells the user which build and why."""
    if choice == "pip":
        return [], "torch: the build pip's own configuration offers (package mirror or PyPI)."
    if choice not in TORCH_CHOICES:
        return ["--extra-index-url", choice], f"torch: from {choice}, as set in the settings."
    if gpu:
        return [], f"torch: the CUDA build, for the NVIDIA GPU found ({gpu})."
    if sys.platform == "darwin":
        return [], "torch: the standard macOS build (CPU, and Apple GPUs)."
    return ["--extra-index-url", TORCH_CPU_INDEX], ("torch: the CPU build (no NVIDIA GPU found), a much smaller "
                                                    "download than the CUDA build.")


def plan_install(plugin_dir: Path | None = None, python: str | None = None, torch_choice: str = "auto",
                 gpu: str | None = None, update: bool = False, reuse_site: str | None = None) -> InstallPlan:
    """The steps of "Install engine" (or "Update engine" with ``update``) for the plugin in ``plugin_dir``.

    ``reuse_site``: site-packages folders (``os.pathsep``-separated) whose packages the new environment may
    use instead of downloading them again (``.pth`` lines; pip still checks every pinned version and
    installs what differs, and builds the engine with the environment's own setuptools) - for sites that
    keep one large torch for many environments, and for the fast install test.
    """
    sources = engine_sources() if plugin_dir is None else Path(plugin_dir) / "engine_src"
    if not (sources / "pyproject.toml").is_file():
        sources = engine_sources()
    constraints = sources / "constraints.txt"
    venv = engine_venv(plugin_dir)
    venv_python = _venv_python(venv)
    exists = venv_python.is_file()
    steps: list[InstallStep] = []
    notes = [f"Engine sources: {sources}", f"Engine environment: {venv}"]
    creates = not (update and exists)
    if creates:
        base = python or base_python()
        if base is None:
            raise FileNotFoundError("No Python 3 was found to create the engine environment with; install "
                                    "Python 3 (on Debian/Ubuntu: the python3-venv package) and try again.")
        notes.append(f"Made with: {base}")
        steps.append(InstallStep("Creating the engine environment", [base, "-m", "venv", "--clear", str(venv)],
                                 0.05))
        if reuse_site:
            notes.append(f"Packages already in {reuse_site} are used where their versions match the pins.")
    torch_args, torch_note = torch_source(torch_choice, gpu)
    notes.append(torch_note)
    pip = [str(venv_python), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off",
           "--no-input"]
    # pip always installs a local folder anew, so "Update engine" replaces the engine even at the same version.
    reusing = bool(reuse_site and creates)
    steps.append(InstallStep("Installing the engine and the packages it needs (torch is large: this takes "
                             "minutes)", [*pip, "-c", str(constraints), *torch_args,
                                          *(["--no-build-isolation"] if reusing else []), str(sources)], 0.95,
                             counts_packages=True))
    return InstallPlan(venv=venv, python=venv_python, log=install_log(plugin_dir), steps=steps, notes=notes,
                       creates_venv=creates, package_count=max(pinned_count(constraints), 1),
                       reuse_site=reuse_site if creates else None)


def write_reuse_link(venv: Path, site: str) -> Path:
    """The ``.pth`` that lets the new environment see the packages of ``site`` (folders separated by
    ``os.pathsep``), after its own."""
    lib = venv / ("Lib" if sys.platform == "win32" else "lib")
    found = sorted(lib.glob("site-packages")) or sorted(lib.glob("python3*/site-packages"))
    if not found:
        raise FileNotFoundError(f"no site-packages folder in {venv}")
    link = found[0] / "geoanomaly-reuse.pth"
    link.write_text("".join(folder + "\n" for folder in str(site).split(os.pathsep) if folder), encoding="utf-8")
    return link


def pinned_count(constraints: Path) -> int:
    try:
        lines = constraints.read_text(encoding="utf-8").splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines if re.match(r"^[A-Za-z0-9_.\-]+\s*==", line.strip()))


_PACKAGE_LINE = re.compile(r"^(Collecting|Requirement already satisfied:)\s+([A-Za-z0-9_.\-]+)")


class PipProgress:
    """How far a ``pip install`` is, from its output lines (pip has no machine-readable progress).

    Each package pip starts on ("Collecting x", "Requirement already satisfied: x") moves the bar
    towards 85 % of the step, out of about as many packages as the constraints pin (dependencies of
    dependencies are more: the share is capped); "Installing collected packages" is 85 %, the end 100 %.
    """

    def __init__(self, expected_packages: int) -> None:
        self.expected = max(expected_packages, 1)
        self.seen: set[str] = set()
        self.fraction = 0.0
        self.status = "Starting pip"

    def feed(self, line: str) -> bool:
        """Read one line; True when the fraction or the status changed."""
        text = line.strip()
        match = _PACKAGE_LINE.match(text)
        if match:
            name = match.group(2).lower().split("==")[0]
            if name in self.seen:
                return False
            self.seen.add(name)
            # Twice the pins' count is the usual size of the whole tree: approach 85 % without reaching it.
            self.fraction = max(self.fraction, 0.85 * len(self.seen) / (len(self.seen) + self.expected))
            self.status = ("Checking " if match.group(1).startswith("Requirement") else "Getting ") + name
            return True
        if text.startswith("Downloading "):
            self.status = "Downloading " + text.split()[1].rsplit("/", 1)[-1]
            return True
        if text.startswith("Installing collected packages"):
            self.fraction = max(self.fraction, 0.85)
            self.status = "Installing the packages (unpacking torch takes a while)"
            return True
        if text.startswith("Successfully installed"):
            self.fraction = 1.0
            self.status = "Installed"
            return True
        return False


def remove_environment(venv: Path) -> None:
    """Remove a half-made environment (a cancelled or failed first install), only if it is one."""
    if (venv / "pyvenv.cfg").is_file():
        shutil.rmtree(venv, ignore_errors=True)


def subprocess_environment() -> dict[str, str]:
    """The steps' environment: the user's, without QGIS's Python settings (as the engine worker's)."""
    from .environment import engine_environment

    env = engine_environment()
    env.pop("PIP_REQUIRE_VIRTUALENV", None)
    return env


def reuse_site_from_environment() -> str | None:
    """``GEOANOMALY_ENGINE_REUSE_SITE``: site-packages folders to reuse (see :func:`plan_install`)."""
    folders = [f for f in os.environ.get("GEOANOMALY_ENGINE_REUSE_SITE", "").split(os.pathsep)
               if f.strip() and Path(f.strip()).is_dir()]
    return os.pathsep.join(f.strip() for f in folders) or None
