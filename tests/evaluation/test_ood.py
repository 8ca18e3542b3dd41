"""OOD detection: the metrics against scikit-learn (AUROC, average precision) and OpenOOD v1.5's FPR@95 rule
(``roc_curve(ood_indicator, -conf)``, the FPR at the first TPR >= 0.95) on scores with ties; the feature
detectors against scikit-learn's covariance and nearest-neighbour search on the zoo's real features."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve
from sklearn.neighbors import NearestNeighbors

from harness.evaluation.ood_detectors import OOD_DETECTORS
from harness.evaluation.ood_metrics import aupr_in, aupr_out, auroc, fpr_at_tpr


def openood_fpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    conf = np.concatenate([id_scores, ood_scores])
    ood_indicator = np.concatenate([np.zeros(len(id_scores)), np.ones(len(ood_scores))])
    fpr_list, tpr_list, _ = roc_curve(ood_indicator, -conf)
    return float(fpr_list[np.argmax(tpr_list >= tpr)])


@pytest.mark.parametrize("decimals", [1, 2, 6])  # coarse rounding: many ties within and across the two sets
def test_ood_metrics_equal_scikit_learn_and_openood_on_scores_with_ties(decimals):
    rng = np.random.default_rng(decimals)
    id_scores = np.round(rng.normal(1.0, 1.0, 400), decimals)
    ood_scores = np.round(rng.normal(0.0, 1.2, 300), decimals)
    labels = np.r_[np.ones(400), np.zeros(300)]
    scores = np.r_[id_scores, ood_scores]
    assert auroc(id_scores, ood_scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert aupr_in(id_scores, ood_scores) == pytest.approx(average_precision_score(labels, scores), abs=1e-12)
    assert aupr_out(id_scores, ood_scores) == pytest.approx(average_precision_score(1 - labels, -scores), abs=1e-12)
    assert fpr_at_tpr(id_scores, ood_scores) == pytest.approx(openood_fpr(id_scores, ood_scores), abs=1e-12)
    assert (len(np.unique(scores)) < len(scores)) == (decimals < 6)  # ties exercised, and the tie-free case too


def test_perfect_and_inverted_detectors_reach_the_bounds():
    inside, outside = np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0])
    assert (auroc(inside, outside), fpr_at_tpr(inside, outside), aupr_in(inside, outside)) == (1.0, 0.0, 1.0)
    assert (auroc(outside, inside), fpr_at_tpr(outside, inside)) == (0.0, 1.0)


@pytest.fixture(scope="module")
def zoo_features():
    from harness.data.digits import DigitsSource
    from harness.models.loaders import load_model
    from harness.specs import ModelSpec
    from harness.zoo import DIGITS_MEAN, DIGITS_STD

    model = load_model(ModelSpec(name="resnet_digits", source="zoo")).module
    mean, std = torch.tensor(DIGITS_MEAN).view(1, 3, 1, 1), torch.tensor(DIGITS_STD).view(1, 3, 1, 1)
    out = {}
    for split in ("train", "test"):
        source = DigitsSource(split)
        images = (torch.from_numpy(source.images).permute(0, 3, 1, 2).float() / 255 - mean) / std
        with torch.no_grad():
            features, logits = model.features_and_logits(images)
        out[split] = (features.double().numpy(), logits, source.labels)
    return out


def test_mahalanobis_equals_a_tied_covariance_from_scikit_learn(zoo_features):
    train_features, _, train_labels = zoo_features["train"]
    test_features = zoo_features["test"][0]
    detector = OOD_DETECTORS.get("mahalanobis")()
    ours = detector.score(None, test_features, detector.fit(train_features, train_labels))
    means = np.stack([train_features[train_labels == c].mean(0) for c in range(10)])
    precision = EmpiricalCovariance(assume_centered=False).fit(train_features - means[train_labels]).precision_
    gaps = test_features[:, None, :] - means[None]
    reference = -np.min(np.einsum("ncd,de,nce->nc", gaps, precision, gaps), axis=1)
    np.testing.assert_allclose(ours, reference, rtol=1e-5)


def test_knn_equals_scikit_learn_nearest_neighbours_on_normalised_features(zoo_features):
    train_features, _, train_labels = zoo_features["train"]
    test_features = zoo_features["test"][0]
    detector = OOD_DETECTORS.get("knn")(k=7)
    ours = detector.score(None, test_features, detector.fit(train_features, train_labels))
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    distances, _ = NearestNeighbors(n_neighbors=7).fit(unit(train_features)).kneighbors(unit(test_features))
    np.testing.assert_allclose(ours, -distances[:, -1], atol=1e-6)


def test_logit_detectors_equal_their_definitions(zoo_features):
    _, logits, _ = zoo_features["test"]
    logits = logits.double()
    assert np.allclose(OOD_DETECTORS.get("msp")().score(logits, None, None), logits.softmax(-1).max(-1).values)
    assert np.allclose(OOD_DETECTORS.get("maxlogit")().score(logits, None, None), logits.max(-1).values)
    energy = OOD_DETECTORS.get("energy")(energy_temperature=2.0).score(logits, None, None)
    assert np.allclose(energy, 2.0 * np.log(np.exp(logits.numpy() / 2.0).sum(-1)))
