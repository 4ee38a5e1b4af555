"""Reward sources and reward models: anything that turns observations (+ task text) into a reward."""

from robo_reward.rewards.sources import (
    REWARD_SOURCES,
    RewardSource,
    RewardSpec,
    SparseSuccessReward,
    make_reward_source,
    reward_rule,
)

__all__ = ["REWARD_SOURCES", "RewardSource", "RewardSpec", "SparseSuccessReward", "make_reward_source", "reward_rule"]
