"""Composable Gymnasium wrappers (SERL / LeRobot style): sim and real robots share every line above the driver."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.rewards.sources import RewardSource


class RewardWrapper(gym.Wrapper):
    """Replaces the env's reward with a RewardSource's; the original stays in info['env_reward']."""

    def __init__(self, env: gym.Env, source: RewardSource):
        super().__init__(env)
        self.source = source
        self._last_obs: dict[str, np.ndarray] | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self.source.reset(obs, getattr(self.env.unwrapped, "task_text", ""))
        self._last_obs = obs
        return obs, info

    def step(self, action):
        next_obs, env_reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, env_reward=env_reward)
        reward = float(self.source.reward(self._last_obs, action, next_obs, info))
        self._last_obs = next_obs
        return next_obs, reward, terminated, truncated, info
