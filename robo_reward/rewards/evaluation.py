"""`robo-reward reward eval / score`: run a reward model over labelled episodes, compute the papers'
metrics, and draw predicted progress beside the frames it was computed from."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.episodes import LabeledEpisode
from robo_reward.rewards.base import RewardModel, RewardResult
from robo_reward.rewards.metrics import preference_accuracy, score_mae, success_metrics, value_order_correlation


def episode_score(result: RewardResult) -> float:
    """What ranks episodes for preferences: the native 1-5 score when the model has one, else the final
    success call, then final progress (the order a shaped return gives them). For a model whose success
    is a threshold on its own progress this is just final progress; a progress-success pair ranks the
    episodes its success detector accepts first."""
    if result.score is not None:
        return float(result.score)
    return float(result.success[-1]) + float(result.progress[-1])


def evaluate_reward_model(model: RewardModel, episodes: Sequence[LabeledEpisode],
                          progress: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]], list[RewardResult]]:
    results, rows = [], []
    for item in tqdm(episodes, desc=f"score episodes ({getattr(model, 'name', 'model')})", disable=not progress):
        result = model.score_episode(item.episode)
        results.append(result)
        row: dict[str, Any] = {"source": item.source, "length": item.episode.length, "success": item.succeeded,
                               "ok": result.ok}
        if result.ok:
            row.update(predicted_success=result.final_success, final_progress=float(result.progress[-1]),
                       score=result.score)
            if item.score is None:  # frames called successful that do not show success (false r_gold)
                row["false_success_frames"] = int(np.sum(result.success & ~item.frame_success))
            if item.succeeded:  # VOC up to the moment of success, as on expert videos that end there
                row["voc"] = value_order_correlation(result.progress[:item.until_success().episode.length])
        else:
            row["error"] = result.error
        if item.score is not None:
            row["target_score"] = item.score
        rows.append(row)
    scored = [(row, r, item) for row, r, item in zip(rows, results, episodes) if r.ok]
    summary: dict[str, Any] = {"episodes": len(rows), "no_reward": len(rows) - len(scored),
                               "successful_episodes": sum(item.succeeded for item in episodes)}
    vocs = [row["voc"] for row, _, _ in scored if "voc" in row]
    if vocs:
        summary["voc_mean"] = float(np.mean(vocs))
        summary["voc_min"] = float(np.min(vocs))
    if scored:
        summary["success"] = success_metrics([r.final_success for _, r, _ in scored],
                                             [item.succeeded for _, _, item in scored])
        # per frame: how often a success call (r_gold under shaping) comes while the frame shows no success;
        # only where labels are per step (LeRobot's next.success), not 1-5 end-of-episode score sets
        framewise = [(r, item) for _, r, item in scored if item.score is None]
        if framewise:
            summary["step_success"] = success_metrics(np.concatenate([r.success for r, _ in framewise]),
                                                      np.concatenate([item.frame_success for _, item in framewise]))
        good = [episode_score(r) for _, r, item in scored if item.succeeded]
        bad = [episode_score(r) for _, r, item in scored if not item.succeeded]
        if good and bad:
            pairs = list(product(good, bad))
            summary["preference_accuracy"] = preference_accuracy([a for a, _ in pairs], [b for _, b in pairs])
        targets = [(r.score, item.score) for _, r, item in scored if r.score is not None and item.score is not None]
        if targets:
            summary["score_mae"] = score_mae([p for p, _ in targets], [t for _, t in targets])
    return summary, rows, results


def plot_progress(path: Path, episodes: Sequence[LabeledEpisode], results: Sequence[RewardResult],
                  max_rows: int = 8, thumbnails: int = 4, truth: str = "success (label)") -> None:
    """One row per episode: frames at evenly spaced steps, then predicted progress vs the success label
    (`truth` names where it comes from)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = min(len(episodes), max_rows)
    fig, axes = plt.subplots(rows, thumbnails + 1, figsize=(2.0 * thumbnails + 5, 2.1 * rows), dpi=100,
                             gridspec_kw={"width_ratios": [1] * thumbnails + [2.5]}, squeeze=False)
    for i in range(rows):
        item, result = episodes[i], results[i]
        camera = item.episode.cameras[0]
        frames = item.episode.frames[camera]
        for j, t in enumerate(np.linspace(0, len(frames) - 1, thumbnails).round().astype(int)):
            axes[i, j].imshow(frames[t])
            axes[i, j].set_title(f"t={t}", fontsize=8)
            axes[i, j].axis("off")
        ax = axes[i, -1]
        if result.ok:
            ax.plot(result.progress, label="predicted progress")
            ax.plot(result.success.astype(float), ls=":", label="predicted success")
        else:
            ax.text(0.5, 0.5, f"no reward:\n{result.error}", ha="center", va="center", fontsize=7, wrap=True)
        ax.fill_between(np.arange(len(item.success)), 0, item.success.astype(float), alpha=0.15, color="green",
                        label=truth)
        ax.set(ylim=(-0.05, 1.05), xlim=(0, max(len(item.success) - 1, 1)))
        ax.set_title(f"{Path(item.source).name}  ({'success' if item.succeeded else 'failure'})", fontsize=8)
        ax.tick_params(labelsize=7)
        if i == 0:
            ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
