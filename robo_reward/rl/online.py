"""What a learning program does with each transition an actor hands it, in one place for
`robo-reward rl train` (simulation) and the robot's learner node: reward it by the run's rule,
store it, make the learner's UTD updates once past learning_starts, and log the training episode it
ends (return, length, the reward's success call, the critic's value check, the update metrics).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robo_reward.errors import RoboRewardError
from robo_reward.rewards.shaping import RewardRule
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.residual import ResidualTD3
from robo_reward.rl.transition import Transition


@dataclass
class Learned:
    """One transition's outcome: its reward, the updates made or skipped for it, and the record of
    the training episode it ended (None while the episode runs on)."""

    reward: float
    update_s: float = 0.0
    skipped_updates: int = 0
    episode_record: dict[str, Any] | None = None


@dataclass
class _OpenEpisode:
    rewards: list[float] = field(default_factory=list)
    visited: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    reward_success: bool = False  # the reward source's success call (a learned reward's, or the env's)
    metrics: dict[str, list[float]] = field(default_factory=dict)


class OnlineLearning:
    """The learner, its two buffers and the run's reward rule, fed one transition at a time.
    Operator interventions (robot only) open windows that go to the demonstration buffer."""

    def __init__(self, learner: ResidualTD3, demo_buffer: NStepReplayBuffer, online_buffer: NStepReplayBuffer,
                 rule: RewardRule, rng: np.random.Generator):
        self.learner, self.demo_buffer, self.online_buffer, self.rule, self.rng = (
            learner, demo_buffer, online_buffer, rule, rng)
        online_buffer.demo_sink = demo_buffer
        self._open: dict[int, _OpenEpisode] = {}  # episodes still running, by the transitions' episode id

    def learn(self, t: Transition, env_step: int, update: bool = True) -> Learned:
        """`env_step`: transitions learned so far, this one included. `update` False stores it only:
        a robot cannot wait for a learner that fell behind, so its node skips updates while its inbox
        is long (`Learned.skipped_updates` counts them)."""
        learner = self.learner
        if (t.obs.size, t.action.size) != (learner.obs_dim, learner.act_dim):
            raise RoboRewardError(f"transition dims ({t.obs.size}, {t.action.size}) do not match the learner's "
                                  f"({learner.obs_dim}, {learner.act_dim})")
        reward = float(self.rule(*t.readings()))
        if not math.isfinite(reward):
            raise RoboRewardError(f"reward {reward} is not finite (readings {t.readings()})")
        # one window per episode whoever acted: items that start with an intervention go to the demos
        self.online_buffer.add_transition(t, reward)
        for ended in [e for e in self._open if e != t.episode]:  # its last transition never came (no reading)
            del self._open[ended]
        episode = self._open.setdefault(t.episode, _OpenEpisode())
        episode.rewards.append(reward)
        episode.visited.append((t.obs, t.action))
        episode.reward_success |= bool(t.success)
        out = Learned(reward)
        if env_step > learner.cfg.learning_starts:
            if update:
                started = time.perf_counter()
                metrics = learner.train_step(self.demo_buffer, self.online_buffer, self.rng)
                out.update_s = time.perf_counter() - started
                for key, value in metrics.items():
                    episode.metrics.setdefault(key, []).append(value)
            else:
                out.skipped_updates = learner.cfg.utd_ratio
        if t.terminated or t.truncated:
            out.episode_record = self._record(self._open.pop(t.episode), env_step)
        return out

    def _record(self, episode: _OpenEpisode, env_step: int) -> dict[str, Any]:
        return {"env_step": env_step, "reward_success": episode.reward_success,
                "return": float(np.sum(episode.rewards)), "length": len(episode.rewards),
                **self.value_check(episode.visited, episode.rewards),
                **{key: float(np.mean(values)) for key, values in episode.metrics.items()}}

    def value_check(self, visited: list[tuple[np.ndarray, np.ndarray]], rewards: list[float]) -> dict[str, float]:
        """The critic's estimate at the episode's first step and on average over its steps, beside the
        discounted return the episode then realised from there (zero after its last step)."""
        gamma = self.learner.cfg.gamma
        realised = np.zeros(len(rewards))
        ahead = 0.0
        for i in range(len(rewards) - 1, -1, -1):
            ahead = rewards[i] + gamma * ahead
            realised[i] = ahead
        q = self.learner.q_estimate(np.stack([o for o, _ in visited]), np.stack([a for _, a in visited]))
        return {"q_first": float(q[0]), "return_first": float(realised[0]), "q_minus_return": float(np.mean(q - realised))}
