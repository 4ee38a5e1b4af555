"""Seeded evaluation shared by the CLI and the training loop: success rate, returns, optional videos."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.episodes import write_video
from robo_reward.rl.policies import Policy, checked_action

EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds never overlap training-episode seeds


@dataclass
class EvalResult:
    successes: list[bool]
    returns: list[float]
    lengths: list[int]
    seeds: list[int]
    videos: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0

    def summary(self) -> dict:
        return {
            "episodes": len(self.successes),
            "success_rate": self.success_rate,
            "mean_return": float(np.mean(self.returns)) if self.returns else 0.0,
            "mean_length": float(np.mean(self.lengths)) if self.lengths else 0.0,
            "seeds": self.seeds,
            "successes": self.successes,
            "videos": self.videos,
        }


def evaluate(
    env: gym.Env,
    policy: Policy,
    episodes: int,
    seed: int = 0,
    video_episodes: int = 0,
    video_dir: Path | None = None,
    progress: bool = True,
    on_episode: Callable[[int, bool], None] | None = None,
) -> EvalResult:
    """Run `episodes` deterministic episodes on seeds EVAL_SEED_OFFSET + seed + i; record the first videos."""
    act_dim = env.action_space.shape[0]
    result = EvalResult([], [], [], [])
    for i in tqdm(range(episodes), desc="evaluate", disable=not progress, mininterval=1.0):
        episode_seed = EVAL_SEED_OFFSET + seed + i
        obs, _ = env.reset(seed=episode_seed)
        policy.reset(episode_seed)
        record = i < video_episodes and video_dir is not None
        frames = [env.render()] if record else []
        total, length, success, done = 0.0, 0, False, False
        while not done:
            action = checked_action(policy.act(obs), act_dim, "policy")
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            success = success or bool(info.get("success", False))
            done = terminated or truncated
            if record:
                frames.append(env.render())
        result.successes.append(success)
        result.returns.append(total)
        result.lengths.append(length)
        result.seeds.append(episode_seed)
        if record:
            path = video_dir / f"episode_{i:03d}_seed{episode_seed}_{'success' if success else 'failure'}.mp4"
            write_video(path, frames, fps=int(getattr(env.unwrapped, "fps", 20)))
            result.videos.append(str(path))
        if on_episode is not None:
            on_episode(i, success)
    return result
