"""Classification metrics: accuracy and macro-F1."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def classification_metrics(truth: Sequence[int], predicted: Sequence[int]) -> dict[str, float]:
    """Accuracy and macro-F1, the F1 averaged over every class that occurs in ``truth`` or
    ``predicted`` (a class predicted but never true counts with F1 = 0, as in scikit-learn)."""
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.shape != predicted.shape or truth.size == 0:
        raise ValueError("truth and predictions must be non-empty and of equal length")
    scores = []
    for label in np.union1d(truth, predicted):
        true_positive = np.sum((truth == label) & (predicted == label))
        false_positive = np.sum((truth != label) & (predicted == label))
        false_negative = np.sum((truth == label) & (predicted != label))
        denominator = 2 * true_positive + false_positive + false_negative
        scores.append(2 * true_positive / denominator if denominator else 0.0)
    return {"accuracy": float(np.mean(truth == predicted)), "macro_f1": float(np.mean(scores)), "count": int(truth.size)}
