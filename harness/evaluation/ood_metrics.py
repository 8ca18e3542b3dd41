"""Out-of-distribution detection metrics on detector scores (higher = more in-distribution), OpenOOD v1.5's
conventions: OOD is the positive class of the ROC curve and of AUPR-Out, in-distribution that of AUPR-In.

- ``auroc``: the probability that a random ID sample scores above a random OOD one, ties counted one half
  (the area under the ROC curve; equal to scikit-learn's ``roc_auc_score``).
- ``fpr_at_tpr``: OpenOOD's FPR@95TPR: on the ROC curve with OOD positive (``roc_curve(is_ood, -score)``),
  the false-positive rate (in-distribution samples flagged as OOD) at the first threshold that flags at least
  95% of the OOD samples.
- ``aupr``: average precision (scikit-learn's ``average_precision_score``) with ID positive (AUPR-In, score as
  is) or OOD positive (AUPR-Out, the score negated).
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def auroc(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    ranks = rankdata(np.concatenate([id_scores, ood_scores]))  # ties get their mean rank
    n_id, n_ood = len(id_scores), len(ood_scores)
    return float((ranks[:n_id].sum() - n_id * (n_id + 1) / 2) / (n_id * n_ood))


def roc_points(id_scores: np.ndarray, ood_scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) with OOD positive, one point per distinct threshold on -score, from (0, 0) up to (1, 1)."""
    flagged = -np.concatenate([ood_scores, id_scores])
    is_ood = np.concatenate([np.ones(len(ood_scores)), np.zeros(len(id_scores))])
    order = np.argsort(-flagged, kind="mergesort")
    flagged, is_ood = flagged[order], is_ood[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(flagged)), len(flagged) - 1]
    tp, fp = np.cumsum(is_ood)[last_of_tie], np.cumsum(1 - is_ood)[last_of_tie]
    return np.r_[0.0, fp / len(id_scores)], np.r_[0.0, tp / len(ood_scores)]


def fpr_at_tpr(id_scores: np.ndarray, ood_scores: np.ndarray, tpr: float = 0.95) -> float:
    fpr_curve, tpr_curve = roc_points(id_scores, ood_scores)
    return float(fpr_curve[np.argmax(tpr_curve >= tpr)])


def average_precision(positive: np.ndarray, negative: np.ndarray) -> float:
    """Average precision of ranking ``positive`` above ``negative`` by score (ties share one threshold)."""
    scores = np.concatenate([positive, negative])
    is_positive = np.concatenate([np.ones(len(positive)), np.zeros(len(negative))])
    order = np.argsort(-scores, kind="mergesort")
    scores, is_positive = scores[order], is_positive[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tp = np.cumsum(is_positive)[last_of_tie]
    precision, recall = tp / (last_of_tie + 1), tp / len(positive)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def aupr_in(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    return average_precision(id_scores, ood_scores)


def aupr_out(id_scores: np.ndarray, ood_scores: np.ndarray) -> float:
    return average_precision(-ood_scores, -id_scores)
