"""Seeded evaluation shared by the CLI and the training loop: success rate, returns, optional videos,
and optionally what a reward model read along the way beside the simulator's success (a learned
reward's audit on episodes nothing was trained on)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.episodes import write_video
from robo_reward.envs.observations import IMAGE_PREFIX
from robo_reward.rewards.shaping import RewardReading
from robo_reward.rl.policies import Policy, checked_action, policy_demo_seeds

EVAL_SEED_OFFSET = 1_000_000  # evaluation seeds never overlap training-episode seeds

# steps a watching reward source still reads after the simulator's first success: room for a call held
# over a few frames (the closed loop's classifier: 5) or made a little late
WATCH_PAST_SUCCESS = 10


def evaluation_seeds(seed: int, episodes: int) -> range:
    """The reset seeds of `eval --seed seed --episodes episodes`."""
    return range(EVAL_SEED_OFFSET + seed, EVAL_SEED_OFFSET + seed + episodes)


def seen_initial_states(manifest: Mapping[str, Any], seeds: range) -> list[int] | None:
    """The evaluation seeds a policy's demonstrations started from (a score on them is not a score on
    unseen initial states); None where its demonstrations' seeds are unknown (a robot's)."""
    demo_seeds = policy_demo_seeds(manifest)
    return sorted(set(demo_seeds) & set(seeds)) if demo_seeds else None


@dataclass
class RewardTrace:
    """A reward source's readings of one evaluation episode, from its first frame on, beside the
    simulator's success after each step (False at the first frame) and the source's first camera."""

    readings: list[RewardReading]
    success: list[bool]
    frames: list[np.ndarray]

    @property
    def called(self) -> bool:
        return any(r.success for r in self.readings)


@dataclass
class EvalResult:
    successes: list[bool]
    returns: list[float]
    lengths: list[int]
    seeds: list[int]
    videos: list[str] = field(default_factory=list)
    traces: list[RewardTrace] = field(default_factory=list)  # with a reward source: one per episode

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
    reward_source=None,
    on_step: Callable[[int, gym.Env], None] | None = None,
    traced_frames: int = 2,
    watch_past_success: int = WATCH_PAST_SUCCESS,
) -> EvalResult:
    """Run `episodes` deterministic episodes on seeds EVAL_SEED_OFFSET + seed + i; record the first videos.
    `reward_source` (a RewardSource) reads every observation — it only watches: success, returns and
    lengths stay the simulator's, counted up to its first success as an env that ends there counts
    them; the env must not end on success itself, so that the source is watched `watch_past_success`
    steps further (a call held for a few frames, or made late, still counts). Its traces keep their
    frames for the first `traced_frames` episodes of each kind (the call and the simulator agree on
    success / on failure, the call on a failed episode, a success never called), the ones worth
    looking at. `on_step(i, env)` is called after every step of episode i (to read the simulator's
    state, e.g. for failure analysis)."""
    act_dim = env.action_space.shape[0]
    camera = IMAGE_PREFIX + reward_source.cameras[0] if reward_source is not None else None
    result = EvalResult([], [], [], [])
    for i, episode_seed in enumerate(tqdm(evaluation_seeds(seed, episodes), desc="evaluate", disable=not progress,
                                          mininterval=1.0)):
        obs, _ = env.reset(seed=episode_seed)
        policy.reset(episode_seed)
        record = i < video_episodes and video_dir is not None
        frames = [env.render()] if record else []
        trace = None
        if reward_source is not None:
            trace = RewardTrace([reward_source.reset(obs, getattr(env.unwrapped, "task_text", ""))], [False], [])
            result.traces.append(trace)
        total, length, success, done = 0.0, 0, False, False
        while not done:
            if trace is not None:
                trace.frames.append(obs[camera])
            action = checked_action(policy.act(obs), act_dim, "policy")
            obs, reward, terminated, truncated, info = env.step(action)
            if not success:  # a watched episode goes on past its first success: those steps do not count
                total += float(reward)
                length += 1
            success = success or bool(info.get("success", False))
            done = terminated or truncated
            if record:
                frames.append(env.render())
            if on_step is not None:
                on_step(i, env)
            if trace is not None:
                trace.readings.append(reward_source.read(obs, info))
                trace.success.append(bool(info.get("success", False)))
                done = done or (success and len(trace.readings) - 1 - length >= watch_past_success)
        if trace is not None:
            kind = (trace.called, success)
            alike = sum(bool(t.frames) and (t.called, any(t.success)) == kind for t in result.traces[:-1])
            if alike < traced_frames:
                trace.frames.append(obs[camera])
            else:
                trace.frames = []
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


def reward_audit(traces: list[RewardTrace]) -> dict:
    """How a reward source's success call and progress held up against the simulator: episodes it
    called on that the simulator judges failed (what a learner would be paid for wrongly), successes
    it never called, the steps from the simulator's first success to the first call, and the final
    progress of successful vs failed episodes."""
    called = np.array([t.called for t in traces])
    succeeded = np.array([any(t.success) for t in traces])
    delays = [next(i for i, r in enumerate(t.readings) if r.success) - t.success.index(True)
              for t in traces if t.called and any(t.success)]
    final = np.array([t.readings[-1].progress for t in traces], float)

    def mean(values) -> float | None:
        values = np.asarray(values, float)
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else None

    return {"episodes": len(traces), "called": int(called.sum()), "called_on_failed": int((called & ~succeeded).sum()),
            "missed_success": int((~called & succeeded).sum()), "agreement": mean(called == succeeded),
            "call_delay_steps": mean(delays), "final_progress_success": mean(final[succeeded]),
            "final_progress_failure": mean(final[~succeeded])}


def plot_reward_traces(path: Path, traces: list[RewardTrace], seeds: list[int], task: str) -> None:
    """The traced episodes that kept their frames: frames beside the predicted progress, the success
    call and the simulator's success (rewards/evaluation.plot_progress)."""
    from robo_reward.data.episodes import LabeledEpisode
    from robo_reward.rewards.base import Episode, RewardResult
    from robo_reward.rewards.evaluation import plot_progress

    shown = [(t, s) for t, s in zip(traces, seeds) if t.frames]
    episodes = [LabeledEpisode(Episode({"camera": np.stack(t.frames)}, task), np.array(t.success), f"seed {s}",
                               seed=s) for t, s in shown]
    results = [RewardResult(progress=np.array([r.progress for r in t.readings], np.float32),
                            success=np.array([r.success for r in t.readings])) for t, _ in shown]
    plot_progress(path, episodes, results, truth="success (simulator)")
