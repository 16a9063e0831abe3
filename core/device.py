"""Choosing the compute device (``auto`` takes CUDA when present, else the CPU) and its CPU threads."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.errors import InvalidInputError


def resolve_device(name: str = "auto"):
    """Return a ``torch.device`` for ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    import torch

    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError("--device cuda was asked for, but no CUDA GPU is available; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise InvalidInputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N")


def describe_device(device) -> str:
    """A line for logs and run records, e.g. ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    import torch

    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


@contextlib.contextmanager
def cpu_threads(device=None, threads: int | None = 1, blas: bool = False) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads, then restore the previous count.

    The engine's networks are small: a second thread barely helps, and on a
    machine shared with other jobs torch's spinning worker threads made
    training several times slower than one thread did (measured on the 2-core
    development machine). ``threads`` None or 0 keeps torch's own choice; on
    a CUDA ``device`` nothing changes. The count is restored even when the
    block fails, so a notebook or a QGIS task is left as it was.

    ``blas=True`` also limits numpy's BLAS (OpenBLAS/MKL, through threadpoolctl)
    to ``threads``: for the small matrices of a survey's readouts (54 x 54
    covariances, MCD) a second spinning BLAS thread doubled the CPU time of
    the transformer's residual Mahalanobis distance and bought no wall time.
    """
    import torch

    before = torch.get_num_threads()
    limit = bool(threads) and (device is None or torch.device(device).type == "cpu")
    if limit:
        torch.set_num_threads(int(threads))
    try:
        if limit and blas:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(limits=int(threads), user_api="blas"):
                yield
        else:
            yield
    finally:
        torch.set_num_threads(before)
