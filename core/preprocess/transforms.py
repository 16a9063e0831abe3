"""Log-ratio transforms for compositional data (Aitchison 1986; Egozcue et al. 2003).

Assays are parts of a whole: their absolute values are constrained by the
closure to 100 %, so Euclidean statistics on raw ppm are misleading. The
centred log-ratio (CLR) expresses each part relative to the geometric mean of
the sample's parts; the isometric log-ratio (ILR) gives p − 1 orthonormal
coordinates. All inputs must be strictly positive (impute first).
"""

from __future__ import annotations

import numpy as np

from core.errors import InvalidInputError

TRANSFORMS = ("clr", "ilr", "log", "none")


def _check_positive(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError("expected a (samples, elements) array")
    if not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise InvalidInputError("log-ratio transforms need positive, finite values; impute missing and "
                                "below-detection values first")
    return values


def log(values: np.ndarray) -> np.ndarray:
    return np.log(_check_positive(values))


def clr(values: np.ndarray) -> np.ndarray:
    """clr(x)_i = ln x_i − mean_j ln x_j."""
    logs = log(values)
    return logs - logs.mean(axis=1, keepdims=True)


def ilr_basis(parts: int) -> np.ndarray:
    """An orthonormal (parts, parts − 1) basis of the CLR plane (pivot / Helmert balances)."""
    if parts < 2:
        raise InvalidInputError("ILR needs at least two elements")
    basis = np.zeros((parts, parts - 1))
    for j in range(parts - 1):
        # Balance of the mean of the first j + 1 parts against part j + 1.
        basis[:j + 1, j] = 1.0 / (j + 1)
        basis[j + 1, j] = -1.0
        basis[:, j] *= np.sqrt((j + 1) / (j + 2))
    return basis


def ilr(values: np.ndarray) -> np.ndarray:
    """ILR coordinates: CLR projected on an orthonormal basis (p − 1 columns)."""
    return clr(values) @ ilr_basis(np.asarray(values).shape[1])


def apply(name: str, values: np.ndarray) -> np.ndarray:
    if name == "clr":
        return clr(values)
    if name == "ilr":
        return ilr(values)
    if name == "log":
        return log(values)
    if name == "none":
        return np.asarray(values, dtype=np.float64)
    raise InvalidInputError(f"unknown transform {name!r}: choose one of {', '.join(TRANSFORMS)}")
