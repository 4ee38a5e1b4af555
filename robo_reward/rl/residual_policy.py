"""The deployed policy of a residual RL run: frozen base + learned residual (no exploration noise unless given)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.device import pick_device
from robo_reward.envs.observations import flat_state
from robo_reward.rl.exploration import ExplorationNoise
from robo_reward.rl.policies import Policy, checked_action, load_policy, register_policy_kind
from robo_reward.rl.residual import ResidualTD3

RESIDUAL_KIND = "residual"
BASE_SUBDIR = "base"
LATEST_CHECKPOINT = Path("checkpoints") / "latest"


class ResidualPolicy:
    def __init__(self, base: Policy, learner: ResidualTD3, explore: ExplorationNoise | None = None):
        self.base = base
        self.learner = learner
        self.explore = explore  # None: greedy, as deployed; an exploration source acts as in training

    def reset(self, seed: int | None = None) -> None:
        self.base.reset(seed)

    def act(self, obs: Mapping[str, np.ndarray]) -> np.ndarray:
        base_action = checked_action(self.base.act(obs), self.learner.act_dim, "base policy")
        return self.learner.act(flat_state(obs), base_action, self.explore)


@register_policy_kind(RESIDUAL_KIND)
def load_residual_policy(directory: Path, manifest: Mapping[str, Any], device: str) -> ResidualPolicy:
    from robo_reward.rl.checkpoint import load_learner

    base, _ = load_policy(directory / BASE_SUBDIR, device)
    return ResidualPolicy(base, load_learner(directory / LATEST_CHECKPOINT, pick_device(device)))
