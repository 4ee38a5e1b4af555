"""The learners `rl train` runs, by name. Registered here, explicitly: the loop, checkpoints and the CLI
name a learner without importing every learner's dependencies (lerobot's SAC pulls in transformers)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import torch

from robo_reward.errors import ConfigError
from robo_reward.rl.learner_config import LEARNER_NAMES, PlainConfig
from robo_reward.rl.lerobot_sac import LeRobotSACConfig
from robo_reward.rl.residual import ResidualTD3Config


@dataclass(frozen=True)
class LearnerKind:
    config: type[PlainConfig]
    module: str
    cls: str
    note: str

    def learner_class(self) -> type:
        return getattr(importlib.import_module(self.module), self.cls)


RESIDUAL_TD3 = "residual-td3"
LEARNERS: dict[str, LearnerKind] = {
    RESIDUAL_TD3: LearnerKind(ResidualTD3Config, "robo_reward.rl.residual", "ResidualTD3",
                              "ResFiT: a bounded residual on the frozen base, REDQ critic ensemble"),
    "lerobot-sac": LearnerKind(LeRobotSACConfig, "robo_reward.rl.lerobot_sac", "LeRobotSAC",
                               "lerobot's own SAC (HIL-SERL), acting alone; the base is not used"),
}
assert tuple(LEARNERS) == LEARNER_NAMES, "keep learner_config.LEARNER_NAMES in step with LEARNERS"


def kind_of(config: PlainConfig) -> str:
    return next(name for name, kind in LEARNERS.items() if isinstance(config, kind.config))


def make_learner(obs_dim: int, act_dim: int, config: PlainConfig, device: torch.device | str):
    return LEARNERS[kind_of(config)].learner_class()(obs_dim, act_dim, config, device)


def learner_from_state_dict(state: dict[str, Any], device: torch.device | str):
    """A learner from its checkpoint alone; checkpoints from before learners had names are residual TD3."""
    name = state.get("kind", RESIDUAL_TD3)
    if name not in LEARNERS:
        raise ConfigError(f"checkpoint of an unknown learner {name!r}; known: {sorted(LEARNERS)}")
    return LEARNERS[name].learner_class().from_state_dict(state, device)
