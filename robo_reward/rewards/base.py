"""One interface for every reward model: score a whole episode, or a stream of observations online.

An `Episode` is frames from one or more cameras (uint8, T x H x W x 3 each) plus the task text and,
optionally, proprioception. Every model reports per-step progress in [0, 1], success and its own
reward; shaping for RL is applied once, outside the models (robo_reward.rewards.shaping).
A model that cannot produce a score (no parsable answer, endpoint down) returns an explicit
"no reward" result (`ok=False` and the reason) — never a made-up number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from robo_reward.errors import RoboRewardError


class RewardInputError(RoboRewardError):
    """Frames, task text or state given to a reward model are unusable (shape, dtype, count, empty)."""


class NoRewardError(RoboRewardError):
    """A model produced no usable score (unparsable reply, endpoint down or too slow)."""


class RewardModelError(RoboRewardError):
    """A reward model cannot be loaded or configured."""


def check_frames(frames: np.ndarray, where: str) -> np.ndarray:
    """Frames must be uint8 RGB, shape (T, H, W, 3) with T >= 1."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8:
        raise RewardInputError(f"{where}: frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise RewardInputError(f"{where}: frames must have shape (T, H, W, 3), got {frames.shape}")
    if frames.shape[0] == 0:
        raise RewardInputError(f"{where}: zero frames")
    return frames


def check_task(task: str) -> str:
    if not isinstance(task, str) or not task.strip():
        raise RewardInputError("task text is empty: every reward model is conditioned on the instruction")
    return task.strip()


@dataclass(frozen=True)
class Episode:
    """A rollout as reward models see it. Cameras are named (e.g. 'agentview', 'robot0_eye_in_hand')."""

    frames: Mapping[str, np.ndarray]
    task: str
    state: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.frames:
            raise RewardInputError("episode has no cameras")
        checked = {cam: check_frames(f, f"camera {cam!r}") for cam, f in self.frames.items()}
        lengths = {cam: f.shape[0] for cam, f in checked.items()}
        if len(set(lengths.values())) != 1:
            raise RewardInputError(f"cameras have different frame counts: {lengths}")
        object.__setattr__(self, "frames", checked)
        object.__setattr__(self, "task", check_task(self.task))
        if self.state is not None:
            state = np.asarray(self.state, dtype=np.float32)
            if state.ndim != 2 or state.shape[0] != self.length:
                raise RewardInputError(f"state must have shape ({self.length}, D), got {state.shape}")
            object.__setattr__(self, "state", state)

    @property
    def length(self) -> int:
        return next(iter(self.frames.values())).shape[0]

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.frames)

    def select(self, cameras: Sequence[str]) -> list[np.ndarray]:
        """Frames of the cameras a model needs, in its order; a missing camera is a clear error."""
        missing = [c for c in cameras if c not in self.frames]
        if missing:
            raise RewardInputError(f"model needs cameras {list(cameras)}, episode has {list(self.frames)}")
        return [self.frames[c] for c in cameras]

    def clip(self, length: int) -> "Episode":
        """The first `length` steps (temporal clipping for partial-progress labels)."""
        state = None if self.state is None else self.state[:length]
        return Episode({c: f[:length] for c, f in self.frames.items()}, self.task, state)


@dataclass
class RewardResult:
    """Per-step outputs of a model over an episode; `ok=False` means "no reward" with `error` saying why."""

    progress: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    success: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    score: float | None = None  # model-native episode score (e.g. RoboReward's 1-5), when it has one
    ok: bool = True
    error: str | None = None

    @classmethod
    def no_reward(cls, reason: str) -> "RewardResult":
        return cls(ok=False, error=reason)

    @property
    def final_success(self) -> bool:
        return bool(self.ok and len(self.success) and self.success[-1])


@dataclass(frozen=True)
class StepScore:
    progress: float
    success: bool
    reward: float
    ok: bool = True
    error: str | None = None


class ProgressStream(Protocol):
    """Online scoring of one episode: `reset` with the first observation, then `step` per new one."""

    def reset(self, frames: Mapping[str, np.ndarray], state: np.ndarray | None = None) -> StepScore: ...

    def step(self, frames: Mapping[str, np.ndarray], state: np.ndarray | None = None) -> StepScore: ...


class RewardModel(Protocol):
    name: str
    cameras: tuple[str, ...]

    def score_episode(self, episode: Episode) -> RewardResult: ...

    def stream(self, task: str) -> ProgressStream: ...


def subsample_indices(length: int, count: int) -> np.ndarray:
    """`count` evenly spread frame indices that always include the last frame (RoboReward)."""
    if length <= count:
        return np.arange(length)
    return np.unique(np.round(np.linspace(0, length - 1, count)).astype(int))


def single_frame(frames: Mapping[str, np.ndarray], cameras: Sequence[str]) -> dict[str, np.ndarray]:
    """One observation's images (H, W, 3 each) as a one-step episode-shaped dict."""
    out = {}
    for cam in cameras:
        if cam not in frames:
            raise RewardInputError(f"observation lacks camera {cam!r}; it has {sorted(frames)}")
        out[cam] = check_frames(np.asarray(frames[cam])[None], f"camera {cam!r}")
    return out


class FrameRewardModel:
    """Base for models that score each frame on its own (CLIP, success classifier): episode scoring
    is batched frame scoring, and the stream scores one frame per step."""

    name = "frame"
    cameras: tuple[str, ...] = ()
    batch_size = 64

    def score_frames(self, frames: Sequence[np.ndarray], task: str,
                     state: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(progress, success probability, native reward) for N frames of each camera."""
        raise NotImplementedError

    success_threshold = 0.5

    def score_episode(self, episode: Episode) -> RewardResult:
        views = episode.select(self.cameras)
        parts = []
        for start in range(0, episode.length, self.batch_size):
            stop = start + self.batch_size
            state = None if episode.state is None else episode.state[start:stop]
            parts.append(self.score_frames([v[start:stop] for v in views], episode.task, state))
        progress, prob, reward = (np.concatenate(p) for p in zip(*parts))
        return RewardResult(progress=progress.astype(np.float32), success=prob >= self.success_threshold,
                            reward=reward.astype(np.float32))

    def stream(self, task: str) -> ProgressStream:
        return _FrameStream(self, check_task(task))


class _FrameStream:
    def __init__(self, model: FrameRewardModel, task: str):
        self.model, self.task = model, task

    def step(self, frames, state=None) -> StepScore:
        views = single_frame(frames, self.model.cameras)
        st = None if state is None else np.asarray(state, np.float32)[None]
        progress, prob, reward = self.model.score_frames([views[c] for c in self.model.cameras], self.task, st)
        return StepScore(float(progress[0]), bool(prob[0] >= self.model.success_threshold), float(reward[0]))

    reset = step
