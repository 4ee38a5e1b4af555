"""Reward sources: anything that turns observations (+ task text) into a scalar reward."""

from robo_reward.rewards.sources import REWARD_SOURCES, RewardSource, SparseSuccessReward, make_reward_source

__all__ = ["REWARD_SOURCES", "RewardSource", "SparseSuccessReward", "make_reward_source"]
