"""The pluggable reward interface the RL loop consumes, and the default sparse success reward.

Reward models (CLIP, VLM scores, process/hop models, RAPL, success classifiers) plug in through
`RewardSpec` (source name + model directory + shaping); `robo-reward rl train --reward NAME`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robo_reward.errors import ConfigError
from robo_reward.rewards.shaping import SHAPING_MODES, RewardReading, RewardRule, ShapingConfig, gold_from_success


class RewardSource(Protocol):
    """Reads each observation an episode reaches (progress, success call, its own reward); the
    learner's `RewardRule` turns two readings into the reward."""

    name: str

    def reset(self, obs: Mapping[str, np.ndarray], task_text: str) -> RewardReading: ...

    def read(self, obs: Mapping[str, np.ndarray], info: Mapping[str, Any]) -> RewardReading: ...


class SparseSuccessReward:
    """1 on a successful step, else 0 — ResFiT's default; success comes from the env's own check."""

    name = "sparse"

    def reset(self, obs: Mapping[str, np.ndarray], task_text: str) -> RewardReading:
        return RewardReading(success=False, reward=0.0)

    def read(self, obs, info) -> RewardReading:
        success = bool(info.get("success", False))
        return RewardReading(success=success, reward=float(success))


MODEL_SOURCES = ("success-classifier", "hop", "clip", "vlm", "rapl", "bradley-terry", "progress-success")
REWARD_SOURCES = ("sparse", *MODEL_SOURCES)
DEFAULT_SHAPING = {"success-classifier": "none"}  # progress models default to policy-invariant shaping


@dataclass(frozen=True)
class RewardSpec:
    """What a run's reward is, saved in the run config so --resume rebuilds the same reward."""

    source: str = "sparse"
    model: str | None = None  # reward-model directory / open_clip directory / clip:NAME
    shaping: str | None = None  # policy-invariant | raw-progress-difference | progress | none (default per source)

    def __post_init__(self) -> None:
        if self.source not in REWARD_SOURCES:
            raise ConfigError(f"unknown reward source {self.source!r}; choose one of {list(REWARD_SOURCES)}")
        if self.source == "sparse":
            if self.model or self.shaping:
                raise ConfigError("--reward sparse takes no --reward-model or --shaping")
            return
        if not self.model:
            raise ConfigError(f"--reward {self.source} needs --reward-model DIR (train one with `robo-reward reward train`)")
        shaping = self.shaping or DEFAULT_SHAPING.get(self.source, "policy-invariant")
        if shaping != "none" and shaping not in SHAPING_MODES:
            raise ConfigError(f"shaping {shaping!r} unknown; choose one of {[*SHAPING_MODES, 'none']}")
        object.__setattr__(self, "shaping", shaping)

    def located(self) -> "RewardSpec":
        """This spec with a model directory as an absolute path with links resolved (`clip:NAME`,
        `hf:ORG/NAME` as written): what a run records, so that it resumes, and is recognised, from
        any working directory, and keeps its reward when a link such as lerobot's `checkpoints/last`
        moves on."""
        from robo_reward.rewards.registry import NAMED_MODEL_PREFIXES

        if not self.model or self.model.startswith(NAMED_MODEL_PREFIXES):
            return self
        return dataclasses.replace(self, model=str(Path(self.model).resolve()))

    @classmethod
    def from_json(cls, data: Any) -> "RewardSpec":
        if isinstance(data, str):  # runs written before reward models existed stored only the name
            return cls(source=data)
        return cls(**data)


def make_reward_source(spec: RewardSpec | str, device: str = "auto") -> RewardSource:
    """Sparse success, or a reward model streamed on camera images."""
    from robo_reward.rewards.registry import ModelRewardSource, load_reward_model

    spec = RewardSpec(source=spec) if isinstance(spec, str) else spec
    if spec.source == "sparse":
        return SparseSuccessReward()
    model = load_reward_model(spec.model, device)
    kind = getattr(model, "name", None)
    if kind != spec.source:
        raise ConfigError(f"--reward {spec.source} but {spec.model} is a {kind!r} reward model")
    return ModelRewardSource(model)


def reward_rule(spec: RewardSpec, source: RewardSource, gamma: float) -> RewardRule:
    """How the learner (discount `gamma`) turns the source's readings into reward."""
    if spec.source == "sparse" or spec.shaping == "none":
        return RewardRule(None)
    return RewardRule(ShapingConfig(mode=spec.shaping, gamma=gamma),
                      gold_from_success(getattr(source, "model", None)))
