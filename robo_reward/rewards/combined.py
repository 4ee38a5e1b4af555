"""One model's progress with another model's success call — e.g. a hop model's dense progress for
shaping and a success classifier trained with labeled failures for the outcome (r_gold).

Why: on PickPlaceCan the hop model orders progress within an episode well (VOC >= 0.9) but a
dropped can ends as high as a placed one, so its Phi >= 1 - delta is a poor success test; the
classifier is the better judge of the final state (docs/BENCHMARKS.md). Saved as a directory that
only points at the two model directories (`robo-reward reward combine`), so `reward eval`,
`reward score`, `rl train --reward progress-success` and the ROS reward server all load it alike.
A per-frame classifier flickers on for single frames mid-episode; `success_hold` k counts success
only once the call has held for k frames in a row (false r_gold is what shaping pays most for).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch.nn as nn

from robo_reward.envs.rendering import common_render
from robo_reward.rewards.base import Episode, ProgressStream, RewardModel, RewardModelError, RewardResult, StepScore
from robo_reward.rewards.vision import read_manifest, save_model_dir

KIND = "progress-success"


class ProgressSuccessReward:
    """RewardModel: progress and native reward from `progress_model`, success from `success_model`."""

    name = KIND
    success_sets_gold = True  # shaping takes r_gold from `success`, not from the progress threshold

    def __init__(self, progress_model: RewardModel, success_model: RewardModel, success_hold: int = 1):
        if not isinstance(success_hold, int) or success_hold < 1:
            raise RewardModelError(f"success_hold must be a whole number of frames >= 1, got {success_hold!r}")
        sizes = {getattr(m, "render_size", None) for m in (progress_model, success_model)} - {None}
        if len(sizes) > 1:
            raise RewardModelError(f"progress model ({progress_model.name}) and success model ({success_model.name}) "
                                   f"were trained at different image sizes {sorted(sizes)}; the env renders one size")
        self.progress_model, self.success_model, self.success_hold = progress_model, success_model, success_hold
        self.cameras = tuple(dict.fromkeys((*progress_model.cameras, *success_model.cameras)))
        self.state_width = max(getattr(m, "state_width", 0) for m in (progress_model, success_model))
        self.render_size = next(iter(sizes), None)
        try:
            self.render_settings = common_render([getattr(m, "render_settings", None) for m in (progress_model, success_model)])
        except ValueError as exc:
            raise RewardModelError(f"progress model ({progress_model.name}) and success model ({success_model.name}) "
                                   f"were trained on frames drawn differently ({exc}); the env draws one way") from None

    def score_episode(self, episode: Episode) -> RewardResult:
        progress = self.progress_model.score_episode(episode)
        if not progress.ok:
            return RewardResult.no_reward(f"progress model {self.progress_model.name}: {progress.error}")
        success = self.success_model.score_episode(episode)
        if not success.ok:
            return RewardResult.no_reward(f"success model {self.success_model.name}: {success.error}")
        return RewardResult(progress=progress.progress, success=held(success.success, self.success_hold),
                            reward=progress.reward, score=progress.score)

    def stream(self, task: str) -> ProgressStream:
        return _ProgressSuccessStream(self.progress_model.stream(task), self.success_model.stream(task),
                                      self.success_hold)


def held(calls: np.ndarray, hold: int) -> np.ndarray:
    """True where the last `hold` calls (this frame included) were all True."""
    run = np.convolve(np.asarray(calls, np.int64), np.ones(hold, np.int64))[:len(calls)]
    return run >= hold


class _ProgressSuccessStream:
    def __init__(self, progress: ProgressStream, success: ProgressStream, hold: int):
        self.progress, self.success, self.hold = progress, success, hold
        self._run = 0  # consecutive frames the success model has called successful

    def _merge(self, p: StepScore, s: StepScore) -> StepScore:
        if not p.ok:
            return StepScore(0.0, False, 0.0, ok=False, error=f"progress model: {p.error}")
        if not s.ok:
            return StepScore(0.0, False, 0.0, ok=False, error=f"success model: {s.error}")
        self._run = self._run + 1 if s.success else 0
        return StepScore(p.progress, self._run >= self.hold, p.reward)

    def reset(self, frames, state=None) -> StepScore:
        self._run = 0
        return self._merge(self.progress.reset(frames, state), self.success.reset(frames, state))

    def step(self, frames, state=None) -> StepScore:
        return self._merge(self.progress.step(frames, state), self.success.step(frames, state))


def _load_part(path: Path, role: str, device: str) -> RewardModel:
    from robo_reward.rewards.registry import load_reward_model

    if read_manifest(path)["kind"] == KIND:
        raise RewardModelError(f"the {role} model {path} is itself a {KIND} model")
    return load_reward_model(path, device)


def save_progress_success(out: str | Path, progress_dir: str | Path, success_dir: str | Path,
                          success_hold: int = 1, overwrite: bool = False,
                          device: str = "cpu") -> ProgressSuccessReward:
    """Check that the two models load and fit together, then write a directory naming them; paths are
    stored relative to it, so the tree can move."""
    out, dirs = Path(out), {"progress": Path(progress_dir), "success": Path(success_dir)}
    for role, path in dirs.items():
        if path.resolve() == out.resolve():
            raise RewardModelError(f"--out {out} is the {role} model's own directory")
    model = ProgressSuccessReward(*(_load_part(path, role, device) for role, path in dirs.items()), success_hold)
    config = {role: os.path.relpath(path.resolve(), out.resolve()) for role, path in dirs.items()}
    config["success_hold"] = success_hold
    save_model_dir(out, KIND, config, nn.Module(), overwrite=overwrite)
    return model


def load_progress_success(path: Path, device: str) -> ProgressSuccessReward:
    cfg = read_manifest(path, KIND)["config"]
    parts = []
    for role in ("progress", "success"):
        if not isinstance(cfg.get(role), str):
            raise RewardModelError(f"{path}: {KIND} config needs a '{role}' model directory path")
        parts.append(_load_part(path / cfg[role], role, device))  # an absolute path stays absolute
    return ProgressSuccessReward(*parts, cfg.get("success_hold", 1))
