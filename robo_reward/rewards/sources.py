"""The pluggable reward interface the RL loop consumes, and the default sparse success reward.

Reward models (CLIP, VLM scores, process/hop models, RAPL, success classifiers) register here
so `robo-reward rl train --reward NAME` can pick one without if-chains.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from robo_reward.errors import ConfigError


class RewardSource(Protocol):
    """Computes the learner's reward for one transition."""

    name: str

    def reset(self, obs: Mapping[str, np.ndarray], task_text: str) -> None: ...

    def reward(
        self,
        obs: Mapping[str, np.ndarray],
        action: np.ndarray,
        next_obs: Mapping[str, np.ndarray],
        info: Mapping[str, Any],
    ) -> float: ...


class SparseSuccessReward:
    """1 on a successful step, else 0 — ResFiT's default; success comes from the env's own check."""

    name = "sparse"

    def reset(self, obs: Mapping[str, np.ndarray], task_text: str) -> None:
        pass

    def reward(self, obs, action, next_obs, info) -> float:
        return 1.0 if info.get("success", False) else 0.0


REWARD_SOURCES: dict[str, Callable[..., RewardSource]] = {"sparse": SparseSuccessReward}


def make_reward_source(name: str, **kwargs: Any) -> RewardSource:
    try:
        factory = REWARD_SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown reward source {name!r}; choose one of {sorted(REWARD_SOURCES)}") from None
    return factory(**kwargs)
