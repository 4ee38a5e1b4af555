"""Turning any progress estimate Phi in [0, 1] into an RL reward — once, outside every model.

Default: policy-invariant (potential-based, Ng et al. 1999) shaping as in Robo-Dopamine,
    r_t = r_gold + gamma * Phi(s_{t+1}) - Phi(s_t),   r_gold = 1 if Phi(s_{t+1}) >= 1 - delta else 0,
which leaves the optimal policy of the r_gold task unchanged. Raw progress differences
(r_t = Phi(s_{t+1}) - Phi(s_t)) stay available under an explicit name: they are the "semantic trap"
(a policy can farm reward by parking in a state the model over-rates), so never the default.
When a separate success detector is more trustworthy than the progress threshold (a learned
classifier beside a hop model, see rewards/combined.py), its per-step call replaces the threshold
as r_gold; the shaping term is unchanged, so the invariance still holds for that r_gold task.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from robo_reward.errors import ConfigError

SHAPING_MODES = ("policy-invariant", "raw-progress-difference", "progress")


@dataclass(frozen=True)
class ShapingConfig:
    mode: str = "policy-invariant"
    gamma: float = 0.99  # must equal the learner's discount for the invariance to hold
    delta: float = 0.05  # Robo-Dopamine's success tolerance for r_gold

    def __post_init__(self) -> None:
        if self.mode not in SHAPING_MODES:
            raise ConfigError(f"shaping mode {self.mode!r} unknown; choose one of {SHAPING_MODES}")
        if not 0.0 < self.gamma <= 1.0:
            raise ConfigError(f"shaping gamma must be in (0, 1], got {self.gamma}")
        if not 0.0 <= self.delta < 1.0:
            raise ConfigError(f"shaping delta must be in [0, 1), got {self.delta}")


def shaped_rewards(progress: np.ndarray, config: ShapingConfig = ShapingConfig(),
                   success: np.ndarray | None = None) -> np.ndarray:
    """Rewards for the T transitions between T+1 progress values (progress[0] = initial state).
    `success` (T+1 flags, optional): a success detector's calls, used as r_gold instead of Phi >= 1 - delta."""
    phi = np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)
    if phi.ndim != 1 or len(phi) < 2:
        raise ValueError(f"need a 1-D progress sequence with >= 2 values, got shape {phi.shape}")
    if success is not None and np.shape(success) != phi.shape:
        raise ValueError(f"success flags shape {np.shape(success)} does not match progress shape {phi.shape}")
    before, after = phi[:-1], phi[1:]
    if config.mode == "policy-invariant":
        gold = (after >= 1.0 - config.delta) if success is None else np.asarray(success, bool)[1:]
        gold = gold.astype(np.float64)
        rewards = gold + config.gamma * after - before
    elif config.mode == "raw-progress-difference":
        rewards = after - before
    else:  # "progress": Phi(s') itself as a dense reward (VLM-RM / CLIP style)
        rewards = after
    return rewards.astype(np.float32)


@dataclass(frozen=True)
class RewardReading:
    """What a reward source says about one observation: progress Phi (NaN when it has none), its
    success call, and its own reward for arriving there (a classifier's call, sparse success)."""

    progress: float = float("nan")
    success: bool = False
    reward: float = float("nan")


@dataclass(frozen=True)
class RewardRule:
    """The learner's reward for one transition from the readings at s and s': `shaped_rewards` with
    the learner's own gamma, or the source's own reward at s' (`shaping` None: sparse success, a
    classifier). The one place progress becomes reward — demonstrations and online data, simulation
    and robots alike."""

    shaping: ShapingConfig | None = None
    gold_from_success: bool = False  # r_gold is the success call, not Phi >= 1 - delta

    def to_dict(self) -> dict:
        return {"shaping": None if self.shaping is None else asdict(self.shaping),
                "gold_from_success": self.gold_from_success}

    @classmethod
    def from_dict(cls, data: dict) -> RewardRule:
        shaping = data["shaping"]
        return cls(None if shaping is None else ShapingConfig(**shaping), bool(data["gold_from_success"]))

    def __call__(self, before: RewardReading, after: RewardReading) -> float:
        if self.shaping is None:
            return float(after.reward)
        flags = np.array([before.success, after.success]) if self.gold_from_success else None
        return float(shaped_rewards(np.array([before.progress, after.progress]), self.shaping, flags)[0])


def gold_from_success(model: object) -> bool:
    """Whether a reward model's r_gold is its success call: it carries a separate success detector
    (`success_sets_gold`, see rewards/combined.py); otherwise r_gold comes from its progress."""
    return bool(getattr(model, "success_sets_gold", False))


def shaped_episode_rewards(model: object, progress: np.ndarray, success: np.ndarray,
                           config: ShapingConfig) -> np.ndarray:
    """`shaped_rewards` of a model's scored episode (progress and success per state)."""
    return shaped_rewards(progress, config, success if gold_from_success(model) else None)
