"""Outputs that appear whole or not at all.

A run writes into a hidden staging folder beside the output folder and moves
each finished file into place only when the whole run succeeded. A failed,
cancelled or killed run leaves the output folder as it was (at worst a hidden
``.NAME.partial-PID`` folder beside it, removed on the next run).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

from core.errors import CancelledError, OutputNotWritableError


@contextlib.contextmanager
def atomic_output_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder; on success move its contents into ``out_dir``.

    Files already in ``out_dir`` with the same names are replaced; others are
    left alone. Safe in any thread: SIGTERM (the plugin's Cancel) is turned
    into :class:`CancelledError` only when called from the main thread.

    Raises:
        OutputNotWritableError: the folder cannot be created or written (also an ``OSError``).
    """
    out = Path(out_dir).expanduser().resolve()
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create the output folder's parent {parent}: {exc.strerror}") from exc
    if out.exists() and not out.is_dir():
        raise OutputNotWritableError(f"output path {out} exists and is not a folder")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise OutputNotWritableError(f"output folder {out} is not writable")
    for stale in parent.glob(f".{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if not pid.isdigit() or not _process_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    staging = parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
    except OSError as exc:  # os.access says yes on some file systems (/sys, read-only mounts) that refuse
        raise OutputNotWritableError(f"output folder {out} is not writable: {exc.strerror}") from exc
    previous = _install_sigterm_handler()
    try:
        yield staging
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            target = out / item.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(item, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if previous is not _NOT_INSTALLED:
            signal.signal(signal.SIGTERM, previous)


def atomic_write_path(path: str | os.PathLike) -> contextlib.AbstractContextManager[Path]:
    """Yield a temporary file name beside ``path``; rename onto it on success."""
    return _atomic_file(Path(path))


@contextlib.contextmanager
def _atomic_file(path: Path) -> Iterator[Path]:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


_NOT_INSTALLED = object()


def _install_sigterm_handler():
    """Turn SIGTERM (the plugin's Cancel) into an exception so staging is removed.

    Returns the handler to restore, or ``_NOT_INSTALLED`` outside the main
    thread: Python allows signal handlers only there, and a worker thread (a
    notebook's, an in-process QGIS task) must neither install nor restore one.
    """
    if threading.current_thread() is not threading.main_thread():
        return _NOT_INSTALLED

    def _handler(signum, frame):  # noqa: ARG001
        raise CancelledError("cancelled")

    return signal.signal(signal.SIGTERM, _handler)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
