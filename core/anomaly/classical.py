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

    def element_residuals(self, samples: PreparedSamples) -> np.ndarray:
        """Each element's deviation from its regression on the others (see :func:`mahalanobis_residuals`)."""
        self._check_compatible(samples)
        return mahalanobis_residuals(samples.values, self.location_, self.precision_)

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
        return cls(robust=getattr(args, "classical_covariance", "robust") == "robust", seed=args.seed)


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
    def from_args(cls, args):
        return cls(seed=args.seed)


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
    def from_args(cls, args):
        return cls()


@register_detector("knn")
class KnnDistanceDetector(Detector):
    """Mean distance to the k nearest samples in element space (Ramaswamy et al. 2000, mean variant).

    When the scored samples are the training samples themselves, each sample's
    own point is left out; exact duplicates of a sample's assays still count,
    as they are other samples.
    """

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def _fit(self, samples: PreparedSamples, progress: Progress) -> None:
        self.training_ = samples.values.astype(np.float64)
        self._tree = cKDTree(self.training_)

    def _score(self, samples):
        X = samples.values.astype(np.float64)
        same = X.shape == self.training_.shape and np.array_equal(X, self.training_)
        k = min(self.k + int(same), len(self.training_))
        dist, _ = self._tree.query(X, k=k)
        dist = dist.reshape(len(X), -1)
        if same:
            dist = dist[:, 1:]  # the sample itself, at distance 0
        return dist.mean(axis=1)

    def _state(self):
        return {"training": self.training_}

    def _restore(self, state):
        self.training_ = state["training"]
        self._tree = cKDTree(self.training_)

    @classmethod
    def add_arguments(cls, parser):
        parser.add_argument("--knn-k", type=int, default=5, help="knn: number of nearest samples in element space")

    @classmethod
    def from_args(cls, args):
        return cls(k=getattr(args, "knn_k", 5))


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

    def element_residuals(self, samples: PreparedSamples) -> np.ndarray:
        self._check_compatible(samples)
        return robust_standardise(self._residuals(samples))

    def _state(self):
        return {"mean": self.mean_, "components": self.components_}

    def _restore(self, state):
        self.mean_, self.components_ = state["mean"], state["components"]

    @classmethod
    def from_args(cls, args):
        return cls()


CLASSICAL = ("mahalanobis", "isolation_forest", "knn", "ocsvm", "pca")
