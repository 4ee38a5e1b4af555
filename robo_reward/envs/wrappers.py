"""Composable Gymnasium wrappers (SERL / LeRobot style): sim and real robots share every line above the driver."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from robo_reward.rewards.sources import RewardSource

READING_KEY = "reward_reading"  # info key: the reward source's RewardReading of the observation returned


class RewardWrapper(gym.Wrapper):
    """Runs a reward source on every observation and puts its reading in info[READING_KEY]; the step's
    reward is the source's own (sparse success, a classifier's call; NaN for a pure progress model).
    The learner's reward comes from two readings through its RewardRule; the env's original reward
    stays in info['env_reward']. The source's success call ends the episode, as the reward-model
    success ends a robot's episode (the simulator's own check only counts in evaluation)."""

    def __init__(self, env: gym.Env, source: RewardSource):
        super().__init__(env)
        self.source = source

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        reading = self.source.reset(obs, getattr(self.env.unwrapped, "task_text", ""))
        return obs, dict(info, **{READING_KEY: reading})

    def step(self, action):
        next_obs, env_reward, terminated, truncated, info = self.env.step(action)
        reading = self.source.read(next_obs, info)
        return next_obs, reading.reward, terminated or reading.success, truncated, dict(
            info, env_reward=env_reward, **{READING_KEY: reading})
