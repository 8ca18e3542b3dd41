"""OOD detectors: each turns a sample's logits (and penultimate features) into a score, higher meaning more
in-distribution. Logit detectors score a batch on its own; feature detectors first fit statistics on the
job's ``fit`` role (the training split) and score from them. A new detector is one registered class here or
in a plugin (``OOD_DETECTORS.register``); the ``ood`` evaluator runs whichever a suite names.

- ``msp``: the maximum softmax probability (Hendrycks & Gimpel, 2017).
- ``maxlogit``: the largest logit (Hendrycks et al., 2022).
- ``energy``: ``T * logsumexp(logits / T)``, the negative free energy (Liu et al., 2020), T a parameter.
- ``mahalanobis``: minus the smallest Mahalanobis distance to a class mean, with class means and one tied
  covariance from the fit features (Lee et al., 2018; no input preprocessing, as OpenOOD's MDS).
- ``knn``: minus the Euclidean distance between L2-normalised features to the k-th nearest normalised fit
  feature (Sun et al., 2022), k a parameter.
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from harness.registry import Registry


class Detector:
    uses_features: ClassVar[bool] = False

    def __init__(self, energy_temperature: float = 1.0, k: int = 50) -> None:
        self.energy_temperature, self.k = energy_temperature, k

    def fit(self, features: np.ndarray, labels: np.ndarray) -> Any:
        """Statistics of the fit split that ``score`` reads (feature detectors only)."""
        return None

    def score(self, logits: torch.Tensor | None, features: np.ndarray | None, fitted: Any) -> np.ndarray:
        raise NotImplementedError


OOD_DETECTORS: Registry[type[Detector]] = Registry("OOD detector")


@OOD_DETECTORS.register("msp")
class MaxSoftmax(Detector):
    def score(self, logits, features, fitted):
        return logits.double().softmax(-1).max(-1).values.numpy()


@OOD_DETECTORS.register("maxlogit")
class MaxLogit(Detector):
    def score(self, logits, features, fitted):
        return logits.double().max(-1).values.numpy()


@OOD_DETECTORS.register("energy")
class Energy(Detector):
    def score(self, logits, features, fitted):
        t = self.energy_temperature
        return (t * torch.logsumexp(logits.double() / t, dim=-1)).numpy()


@OOD_DETECTORS.register("mahalanobis")
class Mahalanobis(Detector):
    uses_features = True

    def fit(self, features, labels):
        classes = np.unique(labels)
        means = np.stack([features[labels == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, labels)]
        covariance = centred.T @ centred / len(features)
        return means, np.linalg.pinv(covariance, hermitian=True)

    def score(self, logits, features, fitted):
        means, precision = fitted
        gaps = features[:, None, :] - means[None, :, :]  # samples x classes x dim
        distances = np.einsum("ncd,de,nce->nc", gaps, precision, gaps)
        return -distances.min(axis=1)


def normalised(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


@OOD_DETECTORS.register("knn")
class KNearest(Detector):
    uses_features = True

    def fit(self, features, labels):
        if self.k > len(features):
            raise ValueError(f"knn: k = {self.k} exceeds the {len(features)} samples of the fit split")
        return normalised(features)

    def score(self, logits, features, fitted):
        bank = torch.from_numpy(fitted)
        distances = torch.cdist(torch.from_numpy(normalised(features)), bank)
        return -distances.kthvalue(self.k, dim=1).values.numpy()
