"""What every learner's hyperparameter dataclass shares: plain-typed round trips for run configs and
checkpoints (`torch.load(weights_only=True)` reads only plain types)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

ConfigT = TypeVar("ConfigT", bound="PlainConfig")
# the names of robo_reward.rl.learners.LEARNERS, here where the CLI can read them without importing torch
LEARNER_NAMES = ("residual-td3", "lerobot-sac")


class PlainConfig:
    def check_ranges(self, counts: tuple[str, ...]) -> None:
        """Counts of at least one, and a demonstration share in [0, 1]: what every learner's batches need."""
        for name in counts:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.demo_fraction <= 1.0:
            raise ValueError(f"demo_fraction must be in [0, 1], got {self.demo_fraction}")

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (tuples become lists) so it survives JSON and `torch.load(weights_only=True)`."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls: type[ConfigT], values: dict[str, Any]) -> ConfigT:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} keys {unknown}; valid keys are {sorted(known)}")
        return cls(**values)
