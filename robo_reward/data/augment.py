"""RoboReward-style negative augmentation: a 1-5 progress training set from success-only demonstrations.

- originals: every successful episode, its own task, score 5;
- temporal clipping: the episode cut at fractions of its length, its own task, score from the
  step-wise progress at the cut (keyframes from the gripper command): 1 + round(4 * Phi), at most 4;
- counterfactual relabeling: the full successful video paired with other instructions, each with
  the score its final state deserves for that instruction (given by the user, default 1).

Written as a directory of mp4 clips plus `labels.jsonl`, one row per sample with the RoboReward
prompt and the target answer ("ANSWER: y") — ready for supervised fine-tuning of a VLM, and
readable back as labelled episodes for `robo-reward reward eval` (MAE of the 1-5 score).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.episodes import LabeledEpisode, load_episodes, read_video, write_video
from robo_reward.data.lerobot_io import load_demonstrations
from robo_reward.errors import DatasetError
from robo_reward.fileutil import staged_dir
from robo_reward.rewards.base import Episode, subsample_indices
from robo_reward.rewards.process import gripper_keyframes, stepwise_progress
from robo_reward.rewards.vlm import ROBOREWARD_RUBRIC

LABELS_FILE = "labels.jsonl"


def clip_score(progress_at_cut: float) -> int:
    """A truncated successful episode never deserves 5: the rubric's 5 means every requirement met."""
    return int(min(4, 1 + round(4 * float(progress_at_cut))))


def build_training_set(dataset: str | Path, out: str | Path, camera: str | None = None,
                       clip_fractions: Sequence[float] = (0.25, 0.5, 0.75),
                       counterfactuals: Mapping[str, int] | None = None, frames_per_sample: int = 16,
                       overwrite: bool = False, progress: bool = True) -> dict:
    episodes = load_episodes(dataset, [camera] if camera else None)
    camera = camera or episodes[0].episode.cameras[0]
    successful = [e.until_success() for e in episodes if e.succeeded]
    if not successful:
        raise DatasetError(f"{dataset}: no successful episode to augment")
    for fraction in clip_fractions:
        if not 0.0 < fraction < 1.0:
            raise DatasetError(f"clip fraction {fraction} must be in (0, 1)")
    for task, score in (counterfactuals or {}).items():
        if not task.strip() or score not in range(1, 6):
            raise DatasetError(f"counterfactual {task!r}={score}: need a non-empty task and a score in 1..5")
    actions = {d.episode_index: d.actions for d in load_demonstrations(dataset)}
    fps = int(json.loads((Path(dataset) / "meta" / "info.json").read_text())["fps"])
    rows, counts = [], {"original": 0, "temporal_clip": 0, "counterfactual": 0}
    with staged_dir(out, overwrite) as staging:
        (staging / "clips").mkdir()
        for item in tqdm(successful, desc="augment", disable=not progress):
            index = int(item.source.rsplit("#", 1)[1])
            frames = item.episode.frames[camera]
            phi = stepwise_progress(len(frames), gripper_keyframes(actions[index]))
            samples = [("original", len(frames), item.episode.task, 5)]
            samples += [("temporal_clip", max(2, int(round(f * len(frames)))), item.episode.task,
                         clip_score(phi[max(2, int(round(f * len(frames)))) - 1])) for f in clip_fractions]
            samples += [("counterfactual", len(frames), task, score) for task, score in (counterfactuals or {}).items()]
            for kind, end, task, score in samples:
                name = f"ep{index:04d}_{kind}_{end:04d}.mp4"
                if not (staging / "clips" / name).exists():
                    write_video(staging / "clips" / name, frames[:end], fps)
                rows.append({"video": f"clips/{name}", "source": item.source, "kind": kind, "end_frame": end,
                             "task": task, "score": score, "frame_indices": subsample_indices(end, frames_per_sample).tolist(),
                             "prompt": ROBOREWARD_RUBRIC.format(task=task), "answer": f"ANSWER: {score}"})
                counts[kind] += 1
        with open(staging / LABELS_FILE, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        (staging / "info.json").write_text(json.dumps({"dataset": str(dataset), "camera": camera, "fps": fps,
                                                       "samples": len(rows), **counts}, indent=2))
    return {"samples": len(rows), **counts}


def load_training_set(root: str | Path) -> list[LabeledEpisode]:
    """The samples of a training set as labelled episodes (score = the 1-5 label)."""
    root = Path(root)
    labels, info = root / LABELS_FILE, root / "info.json"
    if not labels.is_file() or not info.is_file():
        raise DatasetError(f"{root}: not a reward training set ({LABELS_FILE} / info.json missing)")
    camera = json.loads(info.read_text())["camera"]
    out = []
    for line_no, line in enumerate(labels.read_text().splitlines(), 1):
        try:
            row = json.loads(line)
            video, task, score = root / row["video"], row["task"], int(row["score"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{labels}:{line_no}: bad row ({exc}); expected video, task, score") from exc
        if not video.resolve().is_relative_to(root.resolve()):
            raise DatasetError(f"{labels}:{line_no}: video {row['video']!r} is outside the training set")
        frames = read_video(video)
        success = np.zeros(len(frames), bool)
        success[-1] = score == 5
        out.append(LabeledEpisode(Episode({camera: frames}, task), success, f"{root.name}:{row['video']}",
                                  score=float(score)))
    return out
