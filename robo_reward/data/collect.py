"""Roll a policy (scripted demonstrator, teleop, or learned) in an env and record a LeRobotDataset."""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.lerobot_io import EpisodeRecorder
from robo_reward.rl.policies import Policy, checked_action

# demo episodes never share initial states with training episodes; `eval --seed S` resets with
# EVAL_SEED_OFFSET + S, which meets them at S >= 1,000,000 (datasets record their seeds: `eval` warns)
DEMO_SEED_OFFSET = 2_000_000


@dataclass
class CollectStats:
    attempted: int = 0
    saved: int = 0
    successes: list[bool] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    @property
    def success_rate(self) -> float:
        return float(np.mean(self.successes)) if self.successes else 0.0


def collect_episodes(
    env: gym.Env,
    policy: Policy,
    episodes: int,
    recorder: EpisodeRecorder,
    seed: int = 0,
    keep_failures: bool = True,
    progress: bool = True,
) -> CollectStats:
    """Record `episodes` seeded episodes; failures are kept by default (imperfect demos are realistic)."""
    stats = CollectStats()
    task = getattr(env.unwrapped, "task_text", "")
    act_dim = env.action_space.shape[0]
    bar = tqdm(range(episodes), desc="collect demos", disable=not progress, mininterval=1.0)
    for i in bar:
        episode_seed = DEMO_SEED_OFFSET + seed + i
        obs, _ = env.reset(seed=episode_seed)
        policy.reset(episode_seed)
        done, success, length = False, False, 0
        while not done:
            action = checked_action(policy.act(obs), act_dim, "demonstrator")
            next_obs, reward, terminated, truncated, info = env.step(action)
            done = bool(terminated or truncated)
            step_success = bool(info.get("success", False))
            # what the robot was sent: a limiter in front of it reports the command it let through
            recorder.add_step(obs, info.get("executed_action", action), float(reward), step_success, done, task)
            success = success or step_success
            obs, length = next_obs, length + 1
        stats.attempted += 1
        stats.successes.append(success)
        stats.lengths.append(length)
        if success or keep_failures:
            recorder.save_episode(seed=episode_seed)
            stats.saved += 1
        else:
            recorder.discard_episode()
        bar.set_postfix(success=f"{stats.success_rate:.2f}")
    return stats
