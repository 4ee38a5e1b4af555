"""What the reward server does between messages: score aligned camera frames with any reward model
and publish its reading (progress, success call, its own reward); never fail on one bad sample.
Turning readings into reward is the learner's job (its RewardRule, with its own discount, between
control steps — not between camera frames).

Beside an actor the server scores the frames of the observations the actor acts on
(`FramesAtObservations`), so a model with per-episode state steps once per control step, as the
reward wrapper steps it in `rl train`; alone, it scores every aligned frame set.

Frame models (CLIP, success classifier) score a backlog of samples in one batched forward;
progress models with per-episode state (hop fusion, RAPL) step through it in order. A sample the
model cannot score becomes an explicit "no reward" output with the reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from robo_reward.errors import RoboRewardError
from robo_reward.runtime.sync import nearest_in_time
from robo_reward.rewards.base import (
    FrameRewardModel,
    RewardModel,
    check_task,
    single_frame,
)


@dataclass(frozen=True)
class Sample:
    stamp: float
    frames: Mapping[str, np.ndarray]
    state: np.ndarray | None = None


@dataclass(frozen=True)
class RewardOutput:
    stamp: float
    progress: float = float("nan")
    reward: float = float("nan")  # the model's own reward at this frame
    success: bool = False
    ok: bool = True
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    """An observation the actor acted on: its source time, its episode, when the server heard of it."""

    stamp: float
    episode: int
    arrived: float


STAMP_SLACK_S = 1e-6  # a stamp through builtin_interfaces/Time and back may move by a float step


class FramesAtObservations:
    """Pairs each observation the actor acted on with the aligned camera frame set nearest its source
    time, within `tolerance_s` (a 30 Hz camera has one within 17 ms; a simulator draws it at the same
    time). An observation is decided as soon as a frame set at or after its time is in — frame sets
    come in time order, so the nearest is then known — or once `max_wait_s` has passed: then it gets
    the nearest set within tolerance, or none (the learner gets no reading for it and drops its
    transitions). Decided pairs hold their frames however long inference takes to come to them.

    Each observation steps a model's stream once: one announced again (an actor restarted on an idle
    robot) and a frame set published again under its own stamp (an idle lockstep simulator) are
    counted in `repeated` and left out."""

    def __init__(self, tolerance_s: float, max_wait_s: float, keep_s: float = 2.0, max_sets: int = 256):
        self.tolerance_s, self.max_wait_s, self.keep_s = tolerance_s, max_wait_s, keep_s
        self._frames: deque[tuple[float, Mapping[str, np.ndarray]]] = deque(maxlen=max_sets)
        self._waiting: deque[Observed] = deque()
        self._decided: list[tuple[Observed, Mapping[str, np.ndarray] | None]] = []
        self._last: tuple[int, float] | None = None  # (episode, stamp) of the last observation taken
        self.repeated = 0

    def add_frames(self, stamp: float, frames: Mapping[str, np.ndarray]) -> None:
        if self._frames and stamp == self._frames[-1][0]:
            self.repeated += 1
            return
        if self._frames and stamp < self._frames[-1][0]:  # a clock jump (a restarted sim): start over
            self._frames.clear()
        self._frames.append((stamp, frames))
        self._decide(None)  # before the oldest sets go: a waiting observation may need one of them
        while self._frames[0][0] < stamp - self.keep_s:
            self._frames.popleft()

    def add_observation(self, observed: Observed) -> None:
        if self._last is not None and observed.episode == self._last[0] and observed.stamp <= self._last[1]:
            self.repeated += 1
            return
        self._last = (observed.episode, observed.stamp)
        self._waiting.append(observed)
        self._decide(None)

    def ready(self, now: float) -> list[tuple[Observed, Mapping[str, np.ndarray] | None]]:
        """The observations whose frames are decided, in the order they were acted on."""
        self._decide(now)
        out, self._decided = self._decided, []
        return out

    def _decide(self, now: float | None) -> None:
        while self._waiting:
            observed = self._waiting[0]
            # frames around its time are in: one at or after it, and none of them from another clock
            framed = bool(self._frames) and (self._frames[0][0] - self.tolerance_s <= observed.stamp
                                             <= self._frames[-1][0] + STAMP_SLACK_S)
            if not framed and (now is None or now - observed.arrived < self.max_wait_s):
                return
            self._decided.append((observed, nearest_in_time(self._frames, observed.stamp, self.tolerance_s)))
            self._waiting.popleft()


class RewardServerCore:
    def __init__(self, model: RewardModel, task: str):
        self.model = model
        self.task = check_task(task)
        self._stream = None

    def set_task(self, task: str) -> None:
        """A new instruction takes effect at the next sample (the progress stream restarts)."""
        self.task = check_task(task)
        self._stream = None

    def new_episode(self) -> None:
        self._stream = None

    def process(self, samples: Sequence[Sample]) -> list[RewardOutput]:
        if not samples:
            return []
        if isinstance(self.model, FrameRewardModel) and self._stream is not None and len(samples) > 1:
            return self._process_batch(samples)
        return [self._process_one(s) for s in samples]

    def _process_one(self, sample: Sample) -> RewardOutput:
        """A stream starts only at a frame it could score: after a bad first frame the next good one
        starts the episode's stream instead."""
        first = self._stream is None
        try:
            stream = self.model.stream(self.task) if first else self._stream
            score = stream.reset(sample.frames, sample.state) if first else stream.step(sample.frames, sample.state)
        except RoboRewardError as exc:
            return RewardOutput(sample.stamp, ok=False, error=str(exc))
        if not score.ok:
            return RewardOutput(sample.stamp, ok=False, error=score.error)
        self._stream = stream
        return RewardOutput(sample.stamp, score.progress, score.reward, score.success)

    def _process_batch(self, samples: Sequence[Sample]) -> list[RewardOutput]:
        """One forward for the backlog; a sample with bad frames is dropped from the batch and
        reported on its own, the others are still scored."""
        model: FrameRewardModel = self.model  # type: ignore[assignment]
        outputs: dict[int, RewardOutput] = {}
        good, views = [], []
        for i, s in enumerate(samples):
            try:
                views.append(single_frame(s.frames, model.cameras))
                good.append(i)
            except RoboRewardError as exc:
                outputs[i] = RewardOutput(s.stamp, ok=False, error=str(exc))
        if good:
            frames = [np.concatenate([v[c] for v in views]) for c in model.cameras]
            states = [samples[i].state for i in good]
            state = None if any(st is None for st in states) else np.stack(states).astype(np.float32)
            try:
                progress, prob, native = model.score_frames(frames, self.task, state)
            except RoboRewardError as exc:
                return [RewardOutput(s.stamp, ok=False, error=str(exc)) for s in samples]
            for k, i in enumerate(good):
                outputs[i] = RewardOutput(samples[i].stamp, float(progress[k]), float(native[k]),
                                          bool(prob[k] >= model.success_threshold))
        return [outputs[i] for i in range(len(samples))]
