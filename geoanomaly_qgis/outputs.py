"""Where a run's outputs go, and whether they can go there.

QGIS's own default for a folder output is its temporary processing folder,
which QGIS empties when it closes: a geologist's maps vanished with it. The
default here is a folder the user finds again - ``GeoAnomaly`` beside the
saved project file, or ``GeoAnomaly`` in the user's Documents when the
project is not saved yet - with one new sub-folder per run, named after the
tool and the time, so that two runs never mix.

Nothing is created until a run starts; :func:`check_writable` tries the
place for real before the engine starts, so a folder the system refuses
gives one clear message and no run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from qgis.core import QgsProject
from qgis.PyQt.QtCore import QStandardPaths

FOLDER_NAME = "GeoAnomaly"


def lasting_output_base() -> Path:
    """``GeoAnomaly`` beside the saved project, else in the user's Documents (never a temporary folder)."""
    project = QgsProject.instance()
    if project is not None and project.fileName():
        home = project.absolutePath() or str(Path(project.fileName()).parent)
        if home:
            return Path(home) / FOLDER_NAME
    documents = QStandardPaths.writableLocation(QStandardPaths.DocumentsLocation) or str(Path.home())
    return Path(documents) / FOLDER_NAME


def new_run_folder(label: str) -> str:
    """A fresh folder name for one run of ``label`` (e.g. ``samples_to_anomalies 2026-12-02 1405``)."""
    stamp = time.strftime("%Y-%m-%d %H%M%S")
    return str(lasting_output_base() / f"{label} {stamp}")


def new_output_file(label: str, suffix: str) -> str:
    """A fresh file name in the lasting folder (e.g. the map export's PDF and PNG)."""
    stamp = time.strftime("%Y-%m-%d %H%M%S")
    return str(lasting_output_base() / f"{label} {stamp}{suffix}")


def holds_earlier_run(folder: str | os.PathLike) -> bool:
    """True when ``folder`` has the run record of an earlier run (the engine refuses it without --overwrite)."""
    return (Path(folder) / "run.json").is_file()


def check_writable(path: str | os.PathLike) -> str | None:
    """None when a run can write into the folder ``path`` (made if missing); else one sentence saying why not.

    Tried for real (a file created and removed in the nearest existing folder):
    permission bits do not tell about read-only mounts or system folders.
    """
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        return f"The output folder {target} is a file, not a folder. Choose another output folder."
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"The output folder {target} cannot be created: {existing} is not a folder. Choose another one."
    try:
        handle, probe = tempfile.mkstemp(prefix=".geoanomaly-write-test-", dir=existing)
        os.close(handle)
        os.remove(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return (f"GeoAnomaly cannot write into {existing} ({reason}). Choose an output folder you can write "
                "to, for example one in your Documents.")
    return None


# Folders whose earlier run the user agreed to replace, until that run starts (see ask_to_replace).
_REPLACE_AGREED: set[str] = set()


def ask_to_replace(folder: str | os.PathLike) -> bool:
    """Ask the user (once per run) whether the earlier run in ``folder`` may be replaced.

    Only in the desktop, on the main thread (where the algorithm dialog checks its parameters); elsewhere
    (``processing.run`` in a script, ``qgis_process``, the run's own thread) the answer given before is used,
    and with none given the folder is refused.
    """
    key = str(Path(folder).absolute())
    if key in _REPLACE_AGREED:
        return True
    from qgis.PyQt.QtCore import QThread
    from qgis.PyQt.QtWidgets import QApplication, QMessageBox

    app = QApplication.instance()
    if not isinstance(app, QApplication) or QThread.currentThread() != app.thread():
        return False
    from qgis.utils import iface

    if iface is None or iface.mainWindow() is None:
        return False
    answer = QMessageBox.question(
        iface.mainWindow(), "Replace the earlier run?",
        f"The folder\n{key}\nholds the results of an earlier run.\n\nReplace them with this run's results?",
        QMessageBox.Yes | QMessageBox.No, QMessageBox.No)
    if answer == QMessageBox.Yes:
        _REPLACE_AGREED.add(key)
        return True
    return False


def forget_answer(folder: str | os.PathLike) -> None:
    """The run that was allowed to replace ``folder`` has started: a later run asks again."""
    _REPLACE_AGREED.discard(str(Path(folder).absolute()))
