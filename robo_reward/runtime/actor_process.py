"""The two-process transport of `rl train`: the env and the actor loop run in a child process, the
learner in the calling one, so env stepping and gradient updates use both cores.

The same pieces as a robot: the child runs `rl.actor_loop.run_episode` with the frozen base and a
`RuntimeActor` whose versioned weights the learner sends; transitions, weights and results cross
the pipe as bytes (runtime.codecs: float64 vectors, safetensors, JSON) — no pickle. The learner
keeps the configured update-to-data ratio: it grants the child `max_lead` transitions of credit and
acknowledges each one once it has trained on it, so the child waits whenever the learner is behind.
Evaluations run in the child on an env and a base of their own, between the training episodes'
steps, with exploration off.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from robo_reward.errors import RoboRewardError
from robo_reward.rl.transition import Transition
from robo_reward.worker import ignore_stop_signals

# message kinds (first byte)
TRANSITION, EPISODE_END, EVAL_RESULT, READY, FAILED = b"T", b"E", b"R", b"O", b"X"
WEIGHTS, ACK, EVALUATE, STOP = b"W", b"A", b"V", b"S"
START_TIMEOUT_S = 300.0


class _Stop(Exception):
    pass


class _ChildActor:
    """The child's side: env + base + residual weights, episode after episode."""

    def __init__(self, conn, setup: dict[str, Any]):
        import torch

        from robo_reward.envs.wrappers import RewardWrapper
        from robo_reward.rewards import RewardSpec, make_reward_source
        from robo_reward.rl.policies import load_policy
        from robo_reward.rl.runs import make_policy_env
        from robo_reward.runtime.actor import RuntimeActor

        torch.set_num_threads(1)
        self.conn, self.setup = conn, setup
        source = make_reward_source(RewardSpec.from_json(setup["reward"]), "cpu")
        self.env = RewardWrapper(make_policy_env(setup["env"]), source)
        self.eval_env = make_policy_env(setup["eval_env"])
        self.base, _ = load_policy(setup["base"], "cpu")
        self.eval_base, _ = load_policy(setup["base"], "cpu")  # a base of its own: evaluation never disturbs
        # noise std, beta and residual bound come with the learner's weights, which arrive before any episode
        self.actor = RuntimeActor(setup["obs_dim"], setup["act_dim"],
                                  seed=setup["seed"] * 1_000_003 + setup["first_episode"])
        self.credit = int(setup["max_lead"])

    def handle(self, message: bytes) -> None:
        kind, body = message[:1], message[1:]
        if kind == ACK:
            self.credit += 1
        elif kind == WEIGHTS:
            self.actor.load_weights(body)
        elif kind == EVALUATE:
            self.evaluate(json.loads(body))
        elif kind == STOP:
            raise _Stop()
        else:
            raise RoboRewardError(f"actor process: unknown message {kind!r}")

    def drain(self) -> None:
        while self.conn.poll():
            self.handle(self.conn.recv_bytes())

    def emit(self, t: Transition) -> None:
        from robo_reward.runtime.codecs import encode_transition

        self.conn.send_bytes(TRANSITION + encode_transition(t).tobytes())
        self.credit -= 1
        self.drain()
        while self.credit <= 0:  # the learner is behind: wait for it (it holds the update-to-data ratio)
            self.handle(self.conn.recv_bytes())

    def evaluate(self, request: dict[str, Any]) -> None:
        from robo_reward.rl.evaluation import evaluate

        policy = _WeightsPolicy(self.eval_base, self.actor)
        result = evaluate(self.eval_env, policy, int(request["episodes"]), seed=int(request["seed"]), progress=False)
        summary = {k: v for k, v in result.summary().items() if k != "videos"}
        self.conn.send_bytes(EVAL_RESULT + json.dumps(summary).encode())

    def serve(self) -> None:
        from robo_reward.rl.actor_loop import run_episode
        from robo_reward.rl.exploration import episode_horizon

        episode = int(self.setup["first_episode"])
        choose = lambda obs, base_action: self.actor.choose(obs, base_action, explore=True)  # noqa: E731
        horizon = episode_horizon(self.env)
        try:
            while self.actor.version == 0:  # the learner's weights first
                self.handle(self.conn.recv_bytes())
            while True:
                self.drain()
                self.actor.start_episode(horizon)
                outcome = run_episode(self.env, self.base, choose, self.emit, episode=episode,
                                      seed=int(self.setup["seed"]) + episode,
                                      learn_commanded=self.actor.learns_commanded_action)
                self.conn.send_bytes(EPISODE_END + json.dumps(
                    {"episode": outcome.episode, "length": outcome.length, "success": outcome.success}).encode())
                episode += 1
        except _Stop:
            return


class _WeightsPolicy:
    """Base + the child's current residual weights, exploration off: what evaluation runs."""

    def __init__(self, base, actor):
        self.base, self.actor = base, actor

    def reset(self, seed: int | None = None) -> None:
        self.base.reset(seed)

    def act(self, obs) -> np.ndarray:
        from robo_reward.envs.observations import flat_state

        return self.actor.choose(flat_state(obs), np.asarray(self.base.act(obs), np.float32), explore=False)


def _child_main(conn, setup_json: str) -> None:
    ignore_stop_signals()  # the learner stops it (and checkpoints) on Ctrl-C
    try:
        child = _ChildActor(conn, json.loads(setup_json))
        conn.send_bytes(READY)
        child.serve()
    except (EOFError, BrokenPipeError):  # the learner is gone
        pass
    except Exception as exc:  # noqa: BLE001 - whatever broke, the learner reports it
        try:
            conn.send_bytes(FAILED + f"{type(exc).__name__}: {exc}".encode())
        except (BrokenPipeError, OSError):
            pass


class ActorProcess:
    """The learner's handle on the child (a `rl.loop.EpisodeActor`): episodes of transitions in,
    weights and requests out. Weights go out every `publish_every` transitions the learner trained on."""

    def __init__(self, setup: dict[str, Any], learner, publish_every: int = 10):
        self.obs_dim, self.act_dim = int(setup["obs_dim"]), int(setup["act_dim"])
        self.publish_every, self.version, self.published_updates = publish_every, 0, -1
        self.session = uuid.uuid4().hex
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_child_main, args=(child, json.dumps(setup)), name="actor", daemon=True)
        self._process.start()
        child.close()
        self._backlog: deque[bytes] = deque()  # transitions that arrived while an evaluation ran
        if not self._conn.poll(START_TIMEOUT_S):
            self.close()
            raise RoboRewardError(f"the actor process did not start within {START_TIMEOUT_S:.0f} s")
        self._expect(self._recv(), READY)
        self.publish(learner)  # the child acts only with the learner's weights: never a fresh actor

    def _recv(self) -> bytes:
        try:
            message = self._conn.recv_bytes()
        except EOFError:
            raise RoboRewardError(f"the actor process ended unexpectedly (exit code {self._process.exitcode})") \
                from None
        if message[:1] == FAILED:
            raise RoboRewardError(f"actor process failed: {message[1:].decode()}")
        return message

    @staticmethod
    def _expect(message: bytes, kind: bytes) -> bytes:
        if message[:1] != kind:
            raise RoboRewardError(f"actor process: expected message {kind!r}, got {message[:1]!r}")
        return message[1:]

    def publish(self, learner) -> None:
        from robo_reward.runtime.codecs import encode_actor_weights

        self.version += 1
        self.published_updates = learner.num_updates
        self._conn.send_bytes(WEIGHTS + encode_actor_weights(learner, self.session, self.version))

    def sync(self, learner, env_step: int) -> None:
        if env_step % self.publish_every == 0 and learner.num_updates != self.published_updates:
            self.publish(learner)

    def run_episode(self, episode: int, seed: int, learn: Callable[[Transition], None]) -> dict[str, Any]:
        """Learn from the child's next episode as its transitions arrive (the child runs episodes in
        the same order and with the same seeds as the trainer counts them)."""
        from robo_reward.runtime.codecs import decode_transition

        while True:
            message = self._backlog.popleft() if self._backlog else self._recv()
            if message[:1] == EPISODE_END:
                outcome = json.loads(message[1:])
                if outcome["episode"] != episode:
                    raise RoboRewardError(f"actor process ran episode {outcome['episode']}, the learner expected "
                                          f"{episode}")
                return outcome
            body = self._expect(message, TRANSITION)
            learn(decode_transition(np.frombuffer(body, np.float64), self.obs_dim, self.act_dim))
            self._conn.send_bytes(ACK)

    def evaluate(self, episodes: int, seed: int) -> dict[str, Any]:
        self._conn.send_bytes(EVALUATE + json.dumps({"episodes": episodes, "seed": seed}).encode())
        while True:
            message = self._recv()
            if message[:1] == EVAL_RESULT:
                return json.loads(message[1:])
            self._backlog.append(message)

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send_bytes(STOP)
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
        self._conn.close()


def use_actor_process(trainer, learner_threads: int | None = None, max_lead: int = 4):
    """Move a trainer's episodes (rl.loop.ResidualTrainer) into a process of their own, set up from its
    run directory: env steps and updates then overlap on two cores at the same update-to-data ratio.
    `learner_threads`: torch threads for the updates (None: every core but the one the actor process
    holds — a learner thread sharing that core makes every matrix product wait on it)."""
    import torch

    from robo_reward.rewards import RewardSpec
    from robo_reward.rl.residual_policy import BASE_SUBDIR
    from robo_reward.rl.runs import RUN_CONFIG_FILE

    run = json.loads((trainer.run_dir / RUN_CONFIG_FILE).read_text())
    setup = {"env": run["env"], "eval_env": run["env"], "reward": asdict(RewardSpec.from_json(run["reward"])),
             "base": str(trainer.run_dir / BASE_SUBDIR), "obs_dim": trainer.learner.obs_dim,
             "act_dim": trainer.learner.act_dim, "seed": trainer.config.seed,
             "first_episode": trainer.state.episode, "max_lead": max_lead}
    usable_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(learner_threads or max(1, usable_cores - 1))
    trainer.actor = ActorProcess(setup, trainer.learner)
    return trainer
