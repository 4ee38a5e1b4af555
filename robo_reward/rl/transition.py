"""One control step as the actor saw it: what every driver (simulation, robot) hands the learner."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Transition:
    """`action` is the executed action (after any limiter or operator intervention), `next_base_action`
    the base's action at `next_obs` — the one executed at the next step. `stamp` is the next
    observation's source time, which a learner uses to join a reward published for that observation;
    `reward` is the env's own reward (sparse success on a robot), NaN when it has none."""

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
