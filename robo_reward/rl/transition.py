"""One control step as the actor saw it: what every driver (simulation, robot) hands the learner."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from robo_reward.rewards.shaping import RewardReading


@dataclass
class Transition:
    """`action` is the executed action (after any limiter or operator intervention; with the learner's
    `learn_commanded_action` the commanded one unless an operator intervened), `next_base_action`
    the base's action at `next_obs` — the one executed at the next step. `stamp` is the next
    observation's source time and `obs_stamp` the observation's: a learner joins a reward model's
    readings published for those times. `progress`, `next_progress`, `success` and `reward` are the
    readings at obs (progress) and next_obs (the rest) where the env has them (a reward wrapper, the
    robot's own success): the learner's RewardRule turns them into the reward it learns from."""

    obs: np.ndarray
    base_action: np.ndarray
    action: np.ndarray
    next_obs: np.ndarray
    next_base_action: np.ndarray
    stamp: float
    episode: int
    step: int  # index within the episode: n-step windows never bridge a missing step
    terminated: bool = False
    truncated: bool = False
    intervention: bool = False  # the operator's command was executed (HIL-SERL): learn it as a demo
    reward: float = float("nan")
    obs_stamp: float = float("nan")
    progress: float = float("nan")
    next_progress: float = float("nan")
    success: bool = False

    def readings(self) -> tuple[RewardReading, RewardReading]:
        """The reward readings at obs and next_obs, for a RewardRule."""
        return RewardReading(self.progress), RewardReading(self.next_progress, self.success, self.reward)

    def with_readings(self, before: RewardReading, after: RewardReading) -> Transition:
        """This transition with readings a reward model published for its two observations."""
        return dataclasses.replace(self, progress=before.progress, next_progress=after.progress,
                                   success=after.success, reward=after.reward)
