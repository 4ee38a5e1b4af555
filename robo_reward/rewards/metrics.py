"""Reward-model metrics, as the papers define them.

- VOC (Robo-Dopamine): Spearman rank correlation of predicted progress with time on a successful episode.
- MAE of 1-5 end-of-episode scores (RoboRewardBench), averaged per subset then over subsets.
- Success accuracy / F1 against the simulator's (or a person's) success label.
- Preference accuracy: how often the preferred episode of a pair gets the higher score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy.stats import spearmanr


def value_order_correlation(progress: np.ndarray) -> float:
    """Spearman(progress, t). A constant prediction has no rank order: it scores 0, not NaN."""
    progress = np.asarray(progress, dtype=np.float64)
    if len(progress) < 2 or np.all(progress == progress[0]):
        return 0.0
    return float(spearmanr(progress, np.arange(len(progress))).statistic)


def score_mae(predicted: Sequence[float], target: Sequence[float], subsets: Sequence[str] | None = None) -> float:
    """Mean absolute error of 1-5 scores; with `subsets`, the mean of per-subset MAEs (RoboRewardBench)."""
    predicted, target = np.asarray(predicted, np.float64), np.asarray(target, np.float64)
    if predicted.shape != target.shape or predicted.size == 0:
        raise ValueError(f"need equal, non-empty score arrays, got {predicted.shape} and {target.shape}")
    errors = np.abs(predicted - target)
    if subsets is None:
        return float(errors.mean())
    subsets = np.asarray(subsets)
    return float(np.mean([errors[subsets == s].mean() for s in np.unique(subsets)]))


def success_metrics(predicted: Sequence[bool], target: Sequence[bool]) -> Mapping[str, float]:
    predicted, target = np.asarray(predicted, bool), np.asarray(target, bool)
    tp = float(np.sum(predicted & target))
    precision = tp / max(float(predicted.sum()), 1.0)
    recall = tp / max(float(target.sum()), 1.0)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"accuracy": float(np.mean(predicted == target)), "precision": precision, "recall": recall, "f1": f1}


def preference_accuracy(score_preferred: Sequence[float], score_other: Sequence[float]) -> float:
    """Fraction of pairs ranked correctly; ties count half."""
    a, b = np.asarray(score_preferred, np.float64), np.asarray(score_other, np.float64)
    return float(np.mean((a > b) + 0.5 * (a == b)))
