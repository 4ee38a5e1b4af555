"""The residual RL training loop: one place that steps the env, fills buffers, updates, evaluates,
checkpoints and resumes.

Exact resume: training episodes are seeded by their index, evaluations run only at episode
boundaries on their own seeds, the learner owns its torch RNG, and the exploration numpy RNG is
checkpointed — so N steps in one go and N/2 + resume + N/2 give identical weights.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from robo_reward.data.lerobot_io import Demonstration
from robo_reward.envs.observations import flat_state
from robo_reward.envs.wrappers import RewardWrapper
from robo_reward.errors import ConfigError
from robo_reward.rewards.base import Episode
from robo_reward.rewards.shaping import RewardReading, RewardRule
from robo_reward.rewards.sources import RewardSource
from robo_reward.rl.actor_loop import run_episode
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.checkpoint import load_buffers, load_learner, load_progress, save_checkpoint
from robo_reward.rl.evaluation import evaluate
from robo_reward.rl.exploration import ExplorationNoise, episode_horizon
from robo_reward.rl.online import OnlineLearning
from robo_reward.rl.policies import Policy
from robo_reward.rl.residual import ResidualTD3
from robo_reward.rl.residual_policy import LATEST_CHECKPOINT, ResidualPolicy
from robo_reward.rl.transition import Transition


@dataclass
class LoopConfig:
    total_env_steps: int = 30_000
    eval_every: int = 5_000  # env steps; evaluations happen at the next episode boundary
    eval_episodes: int = 20
    checkpoint_every: int = 5_000
    buffer_capacity: int = 1_000_000
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("total_env_steps", "eval_every", "eval_episodes", "checkpoint_every", "buffer_capacity"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)!r}")


@dataclass
class TrainingState:
    env_step: int = 0
    episode: int = 0
    next_eval: int = 0
    next_checkpoint: int = 0
    rng_state: dict[str, Any] = field(default_factory=dict)
    evals: list[dict[str, Any]] = field(default_factory=list)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    # seconds: whole run, gradient updates, evaluations (the rest is acting and waiting for the actor)
    timing: dict[str, float] = field(default_factory=lambda: {"wall_s": 0.0, "update_s": 0.0, "eval_s": 0.0})


def fill_demo_buffer(
    buffer: NStepReplayBuffer, demos: Sequence[Demonstration], base: Policy, readings: Sequence[Sequence[RewardReading]],
    rule: RewardRule,
) -> None:
    """Demo transitions with the base action at every state and the reward the learner gives online:
    `rule` over the reward source's readings of the demo's states (`demo_readings`). As online, the
    source's success call ends the episode (a terminal transition).

    LeRobot frames do not store the observation after an episode's last action. A demo ends at its
    first success call in a terminal transition (no bootstrap, so that missing observation is never
    used); a demo without one drops its last action and is truncated at the last real observation.
    """
    for i, demo in enumerate(demos):
        base.reset(demo.episode_index)
        base_actions = [np.asarray(base.act(o), dtype=np.float32) for o in demo.observations]
        calls = np.flatnonzero([r.success for r in readings[i][1:]])
        usable = int(calls[0]) + 1 if len(calls) else len(demo.actions) - 1
        for t in range(usable):
            success = bool(readings[i][t + 1].success)
            buffer.add(
                flat_state(demo.observations[t]), base_actions[t], np.clip(demo.actions[t], -1.0, 1.0),
                rule(readings[i][t], readings[i][t + 1]),
                flat_state(demo.observations[t + 1]), base_actions[t + 1],
                terminated=success, truncated=t == usable - 1 and not success, episode=i, step=t,
            )


def demo_readings(demos: Sequence[Demonstration], source: RewardSource,
                  episodes: Sequence[Episode] | None = None) -> list[list[RewardReading]]:
    """The reward source's readings of every demo state (T+1 each): a reward model's of the recorded
    videos (`episodes`, batched), or the recorded success for the sparse reward."""
    if episodes is not None:
        return [source.episode_readings(e) for e in episodes]
    return [[RewardReading(success=False, reward=0.0)] +
            [RewardReading(success=bool(s), reward=float(s)) for s in demo.successes] for demo in demos]


class EpisodeActor(Protocol):
    """Where a run's episodes are acted out: in this process (deterministic, exact resume), or in a
    process of its own (runtime.actor_process) so env steps and updates use two cores."""

    def run_episode(self, episode: int, seed: int, learn: Callable[[Transition], None]) -> dict[str, Any]:
        """Act out episode `episode`, handing each transition to `learn` as it happens; returns
        {"length", "success"}."""

    def evaluate(self, episodes: int, seed: int) -> dict[str, Any]:
        """The current policy (exploration off) on the evaluation seeds; EvalResult.summary()."""

    def sync(self, learner: ResidualTD3, env_step: int) -> None:
        """The learner has trained on one more transition (new weights for a remote actor)."""

    def close(self) -> None: ...


class InProcessActor:
    """The env, the base and the learner's own actor in this process, one step after another."""

    def __init__(self, env: gym.Env, base: Policy, learner: ResidualTD3, rng: np.random.Generator):
        self.env, self.base, self.learner = env, base, learner
        self.noise = ExplorationNoise(rng, learner.act_dim)

    def run_episode(self, episode: int, seed: int, learn: Callable[[Transition], None]) -> dict[str, Any]:
        self.noise.start_episode_for(self.learner.cfg, episode_horizon(self.env))
        outcome = run_episode(self.env, self.base, lambda obs, base_action: self.learner.act(
            obs, base_action, self.noise), learn, episode=episode, seed=seed,
            learn_commanded=getattr(self.learner.cfg, "learn_commanded_action", False))
        return {"length": outcome.length, "success": outcome.success}

    def evaluate(self, episodes: int, seed: int) -> dict[str, Any]:
        # success is the simulator's check; the reward model has no say in evaluation (and costs time there)
        env = self.env.env if isinstance(self.env, RewardWrapper) else self.env
        result = evaluate(env, ResidualPolicy(self.base, self.learner), episodes, seed=seed, progress=False)
        return {k: v for k, v in result.summary().items() if k != "videos"}

    def sync(self, learner: ResidualTD3, env_step: int) -> None:
        pass

    def close(self) -> None:
        pass


class ResidualTrainer:
    """Owns everything a run needs; `run()` trains until total_env_steps, checkpointing on the way.
    `actor`: where episodes run (default: here, on `env` and `base`)."""

    def __init__(
        self,
        run_dir: Path,
        env: gym.Env | None,
        base: Policy,
        learner: ResidualTD3,
        demo_buffer: NStepReplayBuffer,
        config: LoopConfig,
        reward_rule: RewardRule,
        online_buffer: NStepReplayBuffer | None = None,
        state: TrainingState | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.env, self.base, self.learner, self.config = env, base, learner, config
        self.demo_buffer = demo_buffer
        cfg = learner.cfg
        self.online_buffer = online_buffer if online_buffer is not None else NStepReplayBuffer(
            config.buffer_capacity, learner.obs_dim, learner.act_dim, cfg.n_step, cfg.gamma
        )
        self.state = state or TrainingState(next_eval=0, next_checkpoint=config.checkpoint_every)
        self.checkpointed_at: int | None = None
        self.rng = np.random.default_rng(config.seed)
        if self.state.rng_state:
            self.rng.bit_generator.state = self.state.rng_state
        self.actor: EpisodeActor = InProcessActor(env, base, learner, self.rng)
        self.learning = OnlineLearning(learner, demo_buffer, self.online_buffer, reward_rule, self.rng)

    @classmethod
    def resume(cls, run_dir: Path, env: gym.Env, base: Policy, config: LoopConfig, reward_rule: RewardRule,
               device) -> "ResidualTrainer":
        ckpt = Path(run_dir) / LATEST_CHECKPOINT
        learner = load_learner(ckpt, device)
        buffers = load_buffers(ckpt)
        demo = NStepReplayBuffer.from_state_dict(buffers["demo"])
        online = NStepReplayBuffer.from_state_dict(buffers["online"])
        state = TrainingState(**load_progress(ckpt))
        return cls(run_dir, env, base, learner, demo, config, reward_rule, online, state)

    def checkpoint(self) -> None:
        self.checkpointed_at = self.state.env_step
        self.state.rng_state = self.rng.bit_generator.state
        save_checkpoint(
            self.run_dir / LATEST_CHECKPOINT,
            self.learner,
            {"demo": self.demo_buffer, "online": self.online_buffer},
            asdict(self.state),
        )

    def run_episode(self) -> dict[str, Any]:
        """One training episode from the actor, with UTD updates after every transition."""
        s = self.state
        ended: list[dict[str, Any]] = []

        def learn(t: Transition) -> None:
            s.env_step += 1
            learned = self.learning.learn(t, s.env_step)
            s.timing["update_s"] += learned.update_s
            if learned.episode_record is not None:
                ended.append(learned.episode_record)
            self.actor.sync(self.learner, s.env_step)

        outcome = self.actor.run_episode(s.episode, self.config.seed + s.episode, learn)
        if len(ended) != 1:
            raise RuntimeError(f"episode {s.episode} ended {len(ended)} times in its transitions (expected once)")
        s.episode += 1
        # success: the simulator's (a robot's) judgement; reward_success: what the reward paid for
        record = {**ended[0], "episode": s.episode, "success": outcome["success"]}
        s.episodes.append(record)
        return record

    def evaluate_now(self) -> dict[str, Any]:
        started = time.perf_counter()
        summary = self.actor.evaluate(self.config.eval_episodes, self.config.seed)
        self.state.timing["eval_s"] += time.perf_counter() - started
        entry = {"env_step": self.state.env_step, **summary}
        self.state.evals.append(entry)
        write_metrics(self.run_dir, self.state)
        return entry

    def run(self, progress: bool = True, on_eval: Callable[[Mapping[str, Any]], None] | None = None) -> TrainingState:
        """Train to total_env_steps. Evaluations fall on episode boundaries once `eval_every` steps
        have passed, and once at the end; splitting a run with checkpoint/resume changes nothing."""
        s, cfg = self.state, self.config
        bar = tqdm(total=cfg.total_env_steps, initial=s.env_step, desc="residual RL", unit="step",
                   disable=not progress, mininterval=1.0)
        started = time.perf_counter()
        try:
            self._train(bar, on_eval)
        finally:
            s.timing["wall_s"] += time.perf_counter() - started
            bar.close()
            self.actor.close()
        if self.checkpointed_at != s.env_step:  # the last periodic save may already be this step
            self.checkpoint()
        write_metrics(self.run_dir, s)
        return s

    def _train(self, bar, on_eval: Callable[[Mapping[str, Any]], None] | None) -> None:
        s, cfg = self.state, self.config
        while True:
            finished = s.env_step >= cfg.total_env_steps
            already_evaluated = bool(s.evals) and s.evals[-1]["env_step"] == s.env_step
            if (s.env_step >= s.next_eval or finished) and not already_evaluated:
                entry = self.evaluate_now()
                bar.set_postfix(eval_success=f"{entry['success_rate']:.2f}")
                if on_eval:
                    on_eval(entry)
            while s.next_eval <= s.env_step:
                s.next_eval += cfg.eval_every
            if finished:
                break
            before = s.env_step
            self.run_episode()
            bar.update(s.env_step - before)
            if s.env_step >= s.next_checkpoint:
                while s.next_checkpoint <= s.env_step:
                    s.next_checkpoint += cfg.checkpoint_every
                self.checkpoint()


def write_metrics(run_dir: Path, state: TrainingState) -> None:
    """metrics.json and success_vs_steps.png beside the run, refreshed at every evaluation."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.json").write_text(json.dumps({"evals": state.evals, "episodes": state.episodes,
                                                      "timing": state.timing}))
    plot_success_curves(run_dir / "success_vs_steps.png", {"residual RL (eval)": state.evals}, state.episodes)


def plot_success_curves(
    path: Path, curves: Mapping[str, Sequence[Mapping[str, Any]]], train_episodes: Sequence[Mapping] = ()
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    for label, points in curves.items():
        if points:
            ax.plot([p["env_step"] for p in points], [p["success_rate"] for p in points], marker="o", label=label)
    if train_episodes:
        steps = np.array([e["env_step"] for e in train_episodes])
        wins = np.array([float(e["success"]) for e in train_episodes])
        window = min(20, len(wins))
        smooth = np.convolve(wins, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, alpha=0.5, label=f"training episodes ({window}-ep. mean)")
    ax.set(xlabel="env steps", ylabel="success rate", ylim=(-0.02, 1.02), title="Success vs environment steps")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # nothing evaluated or finished yet: an empty frame, no legend
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
