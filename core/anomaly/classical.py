"""Classical multivariate detectors: the baselines every deep model is compared with in the same run.

Scores are higher for more anomalous samples. Each saves its learned state as
arrays. Isolation Forest and the one-class SVM have no array form in
scikit-learn short of pickling, so they save their training matrix and refit
deterministically (fixed seed) when loaded — the same scores, and no pickle.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.spatial import cKDTree

from core.anomaly.base import Detector, register_detector
from core.anomaly.readouts import mahalanobis_residuals, robust_standardise
from core.preprocess.pipeline import PreparedSamples
from core.progress import Progress


@register_detector("mahalanobis")
class MahalanobisDetector(Detector):
    """Mahalanobis distance to the background's centre; robust (MCD) covariance by default.

    The minimum covariance determinant estimate ignores the most outlying
    samples when estimating the background, so anomalies do not mask
    themselves by inflating the covariance (Rousseeuw & Van Driessen 1999).
    """

    def __init__(self, robust: bool = True, seed: int = 0) -> None:
        self.robust = robust
        self.seed = seed

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        import warnings

        from sklearn.covariance import EmpiricalCovariance, MinCovDet

        X = samples.values.astype(np.float64)
        if self.robust and X.shape[0] > 2 * X.shape[1]:
            # FastMCD's C-steps can report tiny determinant increases on near-collinear
            # (CLR) data; the estimate is still valid, so keep the user's log clean.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                est = MinCovDet(random_state=self.seed, support_fraction=None).fit(X)
        else:
            est = EmpiricalCovariance().fit(X)
        self.location_ = est.location_
        self.precision_ = np.linalg.pinv(est.covariance_)

    def _score(self, samples: PreparedSamples) -> np.ndarray:
        d = samples.values.astype(np.float64) - self.location_
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision_, d), 0.0))

    def element_residuals(self, samples: PreparedSamples, suite=None) -> np.ndarray:
        """Each element's deviation from its regression on the others; with a suite, the suite's deviation from
        its regression on the elements outside it (see :func:`mahalanobis_residuals`)."""
        self._check_compatible(samples)
        columns = np.array([el in set(suite) for el in samples.elements]) if suite else None
        return mahalanobis_residuals(samples.values, self.location_, self.precision_, columns)

    def _state(self):
        return {"location": self.location_, "precision": self.precision_}

    def _restore(self, state):
        self.location_, self.precision_ = state["location"], state["precision"]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--classical-covariance", choices=["robust", "empirical"], default="robust",
                            help="mahalanobis: covariance estimate (default robust MCD)")

    @classmethod
    def from_args(cls, args):
        return cls(robust=getattr(args, "classical_covariance", "robust") == "robust",
                   seed=getattr(args, "seed", cls.default("seed")))


class _RefitDetector(Detector):
    """Detectors saved as their training matrix and refitted on load (no pickle)."""

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        self.training_ = samples.values.astype(np.float64)
        self._refit()

    def _state(self):
        return {"training": self.training_}

    def _restore(self, state):
        self.training_ = state["training"]
        self._refit()

    def _refit(self) -> None:
        raise NotImplementedError


@register_detector("isolation_forest")
class IsolationForestDetector(_RefitDetector):
    """Isolation Forest (Liu et al. 2008): anomalies are isolated by few random splits."""

    def __init__(self, n_trees: int = 300, seed: int = 0) -> None:
        self.n_trees = n_trees
        self.seed = seed

    def _refit(self) -> None:
        from sklearn.ensemble import IsolationForest

        self.model_ = IsolationForest(n_estimators=self.n_trees, random_state=self.seed, n_jobs=1).fit(self.training_)

    def _score(self, samples):
        return -self.model_.score_samples(samples.values.astype(np.float64))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--iforest-trees", type=int, default=cls.default("n_trees"),
                            help=f"isolation_forest: number of trees (default {cls.default('n_trees')})")

    @classmethod
    def from_args(cls, args):
        return cls(n_trees=getattr(args, "iforest_trees", cls.default("n_trees")),
                   seed=getattr(args, "seed", cls.default("seed")))


@register_detector("ocsvm")
class OneClassSvmDetector(_RefitDetector):
    """One-class SVM with an RBF kernel (Schölkopf et al. 2001); ``nu`` bounds the outlier share."""

    def __init__(self, nu: float = 0.1, gamma: str = "scale") -> None:
        self.nu = nu
        self.gamma = gamma

    def _refit(self) -> None:
        from sklearn.svm import OneClassSVM

        self.model_ = OneClassSVM(nu=self.nu, gamma=self.gamma).fit(self.training_)

    def _score(self, samples):
        return -self.model_.decision_function(samples.values.astype(np.float64))

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--ocsvm-nu", type=float, default=cls.default("nu"),
                            help=f"ocsvm: upper bound on the share of samples outside the boundary "
                                 f"(default {cls.default('nu')})")
        parser.add_argument("--ocsvm-gamma", type=_gamma, default=cls.default("gamma"),
                            help=f"ocsvm: RBF kernel width: scale, auto or a number (default {cls.default('gamma')})")

    @classmethod
    def from_args(cls, args):
        return cls(nu=getattr(args, "ocsvm_nu", cls.default("nu")),
                   gamma=getattr(args, "ocsvm_gamma", cls.default("gamma")))


def _gamma(text: str) -> str | float:
    if text in ("scale", "auto"):
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected scale, auto or a positive number") from None


@register_detector("knn")
class KnnDistanceDetector(Detector):
    """Mean distance to the k nearest samples in element space (Ramaswamy et al. 2000, mean variant).

    A scored sample that is one of the training samples (an exact copy of a
    training row) has that one copy left out, so a training sample is not its
    own neighbour; further exact copies still count, as they are other samples
    (one sample compiled twice). The rule looks at each row alone, so a score
    does not depend on which other samples are scored with it.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        self.training_ = samples.values.astype(np.float64)
        self._tree = cKDTree(self.training_)

    def _score(self, samples):
        X = samples.values.astype(np.float64)
        k = min(self.k, len(self.training_) - 1)
        dist, _ = self._tree.query(X, k=k + 1)
        dist = dist.reshape(len(X), -1)
        # A row at distance 0 from its nearest training row is that training sample: drop the copy,
        # otherwise the farthest of the k + 1.
        own = dist[:, 0] == 0.0
        return np.where(own, dist[:, 1:].mean(axis=1), dist[:, :k].mean(axis=1))

    def _state(self):
        return {"training": self.training_}

    def _restore(self, state):
        self.training_ = state["training"]
        self._tree = cKDTree(self.training_)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--knn-k", type=int, default=cls.default("k"),
                            help=f"knn: number of nearest samples in element space (default {cls.default('k')})")

    @classmethod
    def from_args(cls, args):
        return cls(k=getattr(args, "knn_k", cls.default("k")))


@register_detector("pca")
class PcaReconstructionDetector(Detector):
    """Squared error of reconstructing a sample from the main principal components.

    The components that explain ``variance`` of the survey describe its
    background covariation; what they cannot reconstruct is anomalous.
    """

    def __init__(self, variance: float = 0.9) -> None:
        self.variance = variance

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        X = samples.values.astype(np.float64)
        self.mean_ = X.mean(axis=0)
        _, s, vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        explained = np.cumsum(s**2) / np.sum(s**2)
        n = int(np.searchsorted(explained, self.variance) + 1)
        self.components_ = vt[: min(n, len(s))]

    def _residuals(self, samples) -> np.ndarray:
        d = samples.values.astype(np.float64) - self.mean_
        return d - (d @ self.components_.T) @ self.components_

    def _score(self, samples):
        return np.sum(self._residuals(samples) ** 2, axis=1)

    def score_details(self, samples):
        return {"residuals": self._residuals(samples)}

    def element_residuals(self, samples: PreparedSamples, suite=None) -> np.ndarray:
        """Reconstruction residuals, robust-standardised; with a suite, the suite reconstructed from the other
        elements only (component scores fitted on the non-suite columns), so the suite cannot explain itself."""
        self._check_compatible(samples)
        columns = np.array([el in set(suite) for el in samples.elements]) if suite else None
        if columns is None or columns.all() or not columns.any():
            return robust_standardise(self._residuals(samples))
        d = samples.values.astype(np.float64) - self.mean_
        v = self.components_.T                                   # (elements, components)
        # Least-squares component scores from the other elements. A component that lies (nearly) within the
        # suite cannot be told from them: singular values under 0.1 (< 1 % of its variance outside the suite)
        # are cut, so its score stays at the survey mean instead of amplifying noise.
        scores = d[:, ~columns] @ np.linalg.pinv(v[~columns], rcond=0.1).T
        out = np.zeros_like(d)
        out[:, columns] = robust_standardise(d[:, columns] - scores @ v[columns].T)
        return out

    def _state(self):
        return {"mean": self.mean_, "components": self.components_}

    def _restore(self, state):
        self.mean_, self.components_ = state["mean"], state["components"]

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--pca-variance", type=float, default=cls.default("variance"),
                            help=f"pca: share of the variance the kept components explain "
                                 f"(default {cls.default('variance')})")

    @classmethod
    def from_args(cls, args):
        return cls(variance=getattr(args, "pca_variance", cls.default("variance")))


CLASSICAL = ("mahalanobis", "isolation_forest", "knn", "ocsvm", "pca")
