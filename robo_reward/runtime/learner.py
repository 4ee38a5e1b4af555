"""The learner a robot feeds: the same ResidualTD3, buffers, checkpoints and reward rule as
`robo-reward rl train`, driven by transitions that arrive from an actor process instead of a local
env loop.

Rewards are computed here, once, by the run's RewardRule (the learner's own gamma and shaping mode,
the same rule that rewarded the demonstrations): from the robot's own success signal that travels
with each transition (sparse), or from a reward model's readings that the reward server published
for the two observations' source times (`RewardJoin`). A transition whose readings never arrive is
dropped and counted — the learner never invents a reward — and the n-step windows close at the gap
it leaves. Operator interventions (HIL-SERL) go to the demonstration buffer.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robo_reward.device import pick_device
from robo_reward.errors import RoboRewardError
from robo_reward.fileutil import refuse_output_inside_inputs, staged_dir
from robo_reward.rewards import RewardSpec
from robo_reward.rewards.shaping import RewardReading, RewardRule
from robo_reward.rl.buffers import NStepReplayBuffer
from robo_reward.rl.checkpoint import (
    load_buffers,
    load_learner,
    load_progress,
    readable_checkpoint,
    save_checkpoint,
)
from robo_reward.rl.loop import TrainingState, write_metrics
from robo_reward.rl.online import OnlineLearning
from robo_reward.rl.residual import ResidualTD3, ResidualTD3Config
from robo_reward.rl.residual_policy import LATEST_CHECKPOINT
from robo_reward.rl.runs import RUN_CONFIG_FILE, start_run
from robo_reward.rl.transition import Transition
from robo_reward.runtime.codecs import encode_actor_weights
from robo_reward.runtime.sync import nearest_in_time

INTERVENTION_CAPACITY = 100_000  # demo-buffer room for operator interventions


@dataclass
class RewardJoin:
    """Pairs each transition with the reward model's readings published for its observation's and its
    next observation's source times (each within `tolerance_s`). An episode ends at the first reading
    that calls success, as the reward wrapper ends it in simulation: that transition is terminal and
    the steps the robot took before the call reached the reset manager (reward latency) are not
    learned from (`after_success` counts them). As in simulation only that reading makes a transition
    terminal: one the robot ended on an operator's mark the model does not share, or on a reading
    its own next observation does not have, is a cut (truncated, bootstrapped), never a terminal
    state without the success the reward pays for."""

    tolerance_s: float
    max_wait_s: float = 2.0  # a transition waits this long (arrival clock) for its readings
    dropped: int = 0
    after_success: int = 0
    _pending: deque = field(default_factory=deque)  # (arrival, transition)
    _readings: deque = field(default_factory=lambda: deque(maxlen=1000))  # (stamp, RewardReading)
    _succeeded: deque = field(default_factory=lambda: deque(maxlen=100))  # episodes ended by a success call

    def add_reading(self, stamp: float, reading: RewardReading) -> None:
        self._readings.append((stamp, reading))

    def add_transition(self, t: Transition, now: float) -> None:
        self._pending.append((now, t))

    def _reading_at(self, stamp: float) -> RewardReading | None:
        """The closest reading; of two for the same observation, the later (a stream restarted there)."""
        return nearest_in_time(self._readings, stamp, self.tolerance_s)

    def ready(self, now: float) -> list[Transition]:
        """Transitions with their readings, in order; the overdue ones are dropped."""
        out = []
        while self._pending:
            arrived, t = self._pending[0]
            before, after = self._reading_at(t.obs_stamp), self._reading_at(t.stamp)
            if t.episode in self._succeeded:
                self.after_success += 1
            elif before is not None and after is not None:
                joined = t.with_readings(before, after)
                if joined.success:
                    joined = dataclasses.replace(joined, terminated=True, truncated=False)
                    self._succeeded.append(t.episode)
                elif joined.terminated:
                    joined = dataclasses.replace(joined, terminated=False, truncated=True)
                out.append(joined)
            elif now - arrived > self.max_wait_s:
                self.dropped += 1
            else:
                break  # keep order: later transitions wait behind this one
            self._pending.popleft()
        return out


def same_reward(a: RewardSpec, b: RewardSpec) -> bool:
    """The same source and model (directories compared as `RewardSpec.located` gives them)."""
    a, b = a.located(), b.located()
    return a.source == b.source and a.model == b.model


class RuntimeLearner:
    def __init__(self, run_dir: Path, learner: ResidualTD3, demo_buffer: NStepReplayBuffer,
                 online_buffer: NStepReplayBuffer, progress: dict[str, Any], rule: RewardRule, seed: int = 0):
        self.run_dir, self.learner = Path(run_dir), learner
        self.demo_buffer, self.online_buffer = demo_buffer, online_buffer
        self.progress = {"env_step": 0, "episodes": 0, "interventions": 0, "weights_version": 0,
                         "skipped_updates": 0, "episode_log": [], **progress}
        self.rng = np.random.default_rng(seed)
        if "rng_state" in self.progress:
            self.rng.bit_generator.state = self.progress["rng_state"]
        self.learning = OnlineLearning(learner, demo_buffer, online_buffer, rule, self.rng)
        self.session = uuid.uuid4().hex  # weights published by this process; a restart is a new session

    # ------------------------------------------------------------------ create / resume
    @classmethod
    def create(cls, out: Path, dataset: Path, base: Path, learner_config: ResidualTD3Config,
               reward: RewardSpec, device: str = "cpu", overwrite: bool = False,
               buffer_capacity: int = 1_000_000) -> RuntimeLearner:
        out, dataset, device, reward = Path(out), Path(dataset), str(pick_device(device)), reward.located()
        refuse_output_inside_inputs(out, [dataset, Path(base)])
        with staged_dir(out, overwrite) as staging:
            run = start_run(staging, dataset, base, learner_config, reward, device, 0.0, learner_config.seed,
                            INTERVENTION_CAPACITY)
            online = NStepReplayBuffer(buffer_capacity, run.learner.obs_dim, run.learner.act_dim,
                                       learner_config.n_step, learner_config.gamma)
            (staging / RUN_CONFIG_FILE).write_text(json.dumps(
                {"env": run.train_spec, "reward": asdict(reward), "reward_rule": run.rule.to_dict(),
                 "dataset": str(dataset), "base": str(base), "learner": learner_config.to_dict(), "runtime": True},
                indent=2))
            runtime = cls(staging, run.learner, run.demo_buffer, online, {}, run.rule, learner_config.seed)
            runtime.checkpoint()
        runtime.run_dir = out
        return runtime

    @classmethod
    def resume(cls, run_dir: Path, device: str = "cpu", reward: RewardSpec | None = None) -> RuntimeLearner:
        """`reward`: the reward this launch feeds the learner (the stack's reward server and success
        source follow it); a run learns on only from the reward it was created with."""
        ckpt = Path(run_dir) / LATEST_CHECKPOINT
        if not readable_checkpoint(ckpt).is_dir():
            raise RoboRewardError(f"{run_dir}: no learner checkpoint to resume from")
        try:
            config = json.loads((Path(run_dir) / RUN_CONFIG_FILE).read_text())
            rule, created_with = RewardRule.from_dict(config["reward_rule"]), RewardSpec.from_json(config["reward"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RoboRewardError(f"{run_dir / RUN_CONFIG_FILE}: no readable reward_rule and reward ({exc}); it was "
                                  "written by an older robo_reward — start a new run directory") from exc
        if reward is not None and not same_reward(reward, created_with):
            raise RoboRewardError(
                f"{run_dir} learns from reward {created_with.source!r}" +
                (f" (model {created_with.model})" if created_with.model else "") +
                f"; this launch gives reward {reward.source!r}" + (f" (model {reward.model})" if reward.model else "") +
                ": launch it with the run's reward, or give a new run directory")
        learner = load_learner(ckpt, pick_device(device))
        buffers = load_buffers(ckpt)
        demo = NStepReplayBuffer.from_state_dict(buffers["demo"])
        demonstrations = demo.capacity - INTERVENTION_CAPACITY
        if "kept" not in buffers["demo"] and demonstrations <= len(demo) < demo.capacity:  # saved before keep_stored
            demo.kept = demonstrations  # the ring never wrapped: its demonstrations are still whole
        return cls(run_dir, learner, demo, NStepReplayBuffer.from_state_dict(buffers["online"]),
                   load_progress(ckpt), rule, learner.cfg.seed)

    # ------------------------------------------------------------------ learning
    def add(self, t: Transition, update: bool = True) -> float:
        """Learn from one transition as `rl train` does (OnlineLearning: reward by the run's rule,
        store, UTD updates past learning_starts); returns its reward. `update` False stores it only: a
        robot cannot wait for a learner that fell behind, so the node skips updates while its inbox
        is long (`utd_reached` says what the ratio came to). On the robot the reward's success call is
        the episode's only judge, so a logged episode's `success` is that call."""
        p = self.progress
        learned = self.learning.learn(t, p["env_step"] + 1, update)
        p["env_step"] += 1
        p["interventions"] += int(t.intervention)
        p["skipped_updates"] += learned.skipped_updates
        if learned.episode_record is not None:
            p["episodes"] += 1
            record = learned.episode_record
            p["episode_log"].append({**record, "episode": t.episode, "success": record["reward_success"]})
        return learned.reward

    @property
    def utd_reached(self) -> float:
        """Updates per transition since learning started (the configured ratio unless updates were skipped)."""
        past = self.progress["env_step"] - self.learner.cfg.learning_starts
        return self.learner.num_updates / past if past > 0 else 0.0

    def actor_weights(self) -> bytes:
        """The deployable actor (normalizer + residual actor) as safetensors bytes, versioned."""
        self.progress["weights_version"] += 1
        return encode_actor_weights(self.learner, self.session, self.progress["weights_version"],
                                    env_step=self.progress["env_step"])

    def checkpoint(self) -> None:
        p = self.progress
        write_metrics(self.run_dir, TrainingState(env_step=p["env_step"], episode=p["episodes"],
                                                  episodes=p["episode_log"]))
        p["rng_state"] = self.rng.bit_generator.state
        save_checkpoint(self.run_dir / LATEST_CHECKPOINT, self.learner,
                        {"demo": self.demo_buffer, "online": self.online_buffer}, self.progress)
