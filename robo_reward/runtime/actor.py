"""The actor a robot runs at its control rate: the learner's latest residual over the frozen base
(the base itself is the shared actor loop's to call, robo_reward.rl.actor_loop).

Weights arrive as versioned safetensors blobs and are swapped in whole (one reference
assignment), so a control step never mixes two versions. Until the first blob arrives the
residual is zero: the robot executes the base policy. Every command passes `CommandGate` first —
no command without a fresh state, a safety OK and a running episode.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from robo_reward.config.hardware import HardwareConfig
from robo_reward.envs.observations import EE_POSE_DIM, ENV_STATE_KEY, STATE_KEY, proprio_vector
from robo_reward.rl.exploration import ExplorationNoise
from robo_reward.rl.networks import ObsNormalizer, ResidualActor, residual_bounds
from robo_reward.rl.policies import checked_action
from robo_reward.rl.residual import ResidualTD3Config, residual_action
from robo_reward.runtime.codecs import MessageError, decode_weights
from robo_reward.safety.monitor import JointStateError, joint_vector


@dataclass(frozen=True)
class _Weights:
    session: str  # one learner process's lifetime: versions count up within it
    version: int
    cfg: ResidualTD3Config
    normalizer: ObsNormalizer
    actor: ResidualActor


class RuntimeActor:
    """The residual half of a robot's policy, with weights that arrive while it runs."""

    def __init__(self, obs_dim: int | None, act_dim: int, seed: int = 0, device: str = "cpu"):
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.device = torch.device(device)
        # until weights arrive (they carry the learner's settings): the default learner's noise, within its bound
        defaults = ResidualTD3Config()
        self.noise = ExplorationNoise(np.random.default_rng(seed), act_dim, defaults.exploration_noise)
        self._bound = residual_bounds(defaults.residual_scale, act_dim)
        self._weights: _Weights | None = None

    @property
    def version(self) -> int:
        w = self._weights
        return w.version if w else 0

    def load_weights(self, blob: bytes) -> int:
        """Decode, check and build the new actor off to the side, then swap it in. Raises MessageError
        (the old weights stay) for a blob from another robot, a replayed version, or corrupt bytes."""
        tensors, meta = decode_weights(blob)
        try:
            version, obs_dim, act_dim = int(meta["version"]), int(meta["obs_dim"]), int(meta["act_dim"])
            session = str(meta["session"])
            cfg = ResidualTD3Config.from_dict(meta["learner"])
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageError(f"actor weights metadata is incomplete ({exc})") from exc
        if (obs_dim, act_dim) != (self.obs_dim or obs_dim, self.act_dim):
            raise MessageError(f"actor weights are for obs {obs_dim} / action {act_dim}, this robot has "
                               f"obs {self.obs_dim} / action {self.act_dim}")
        current = self._weights
        if current is not None and session == current.session and version <= current.version:
            # a replay of what is running (latched topic); a restarted learner starts a new session
            raise MessageError(f"actor weights version {version} is not newer than the running {current.version}")
        normalizer = ObsNormalizer(obs_dim, cfg.obs_std_floor)
        try:
            actor = ResidualActor(obs_dim, act_dim, cfg.actor_hidden, cfg.residual_scale)
        except ValueError as exc:  # e.g. a residual bound per dimension for another action size
            raise MessageError(f"actor weights' settings do not fit this robot ({exc})") from exc
        try:
            normalizer.load_state_dict({k.removeprefix("obs_normalizer."): v for k, v in tensors.items()
                                        if k.startswith("obs_normalizer.")})
            actor.load_state_dict({k.removeprefix("actor."): v for k, v in tensors.items() if k.startswith("actor.")})
        except RuntimeError as exc:
            raise MessageError(f"actor weights do not fit the network ({exc})") from exc
        self.obs_dim = obs_dim
        self._weights = _Weights(session, version, cfg, normalizer.to(self.device), actor.to(self.device))
        return version

    @property
    def learns_commanded_action(self) -> bool:
        """Whether transitions carry the commanded action (the running weights' learner config; the
        executed one until weights arrive)."""
        w = self._weights
        return bool(w is not None and w.cfg.learn_commanded_action)

    def start_episode(self, horizon: int) -> None:
        """A new episode's exploration, as the running weights' learner config says (white noise of the
        default std until weights arrive)."""
        w = self._weights
        if w is not None:
            self.noise.start_episode_for(w.cfg, horizon)

    def choose(self, flat_obs: np.ndarray, base_action: np.ndarray, explore: bool) -> np.ndarray:
        """The action to send for this observation and the base's action at it (the base is the actor
        loop's to call, once per step)."""
        if self.obs_dim is None:
            self.obs_dim = flat_obs.size
        elif flat_obs.size != self.obs_dim:
            raise MessageError(f"observation has {flat_obs.size} values, the policy expects {self.obs_dim}")
        w = self._weights  # one read: the whole step uses one version
        noise = self.noise() if explore else None
        if w is None:
            noise = 0.0 if noise is None else np.clip(noise, -self._bound, self._bound)
            action = np.clip(base_action + noise, -1.0, 1.0).astype(np.float32)
        else:
            action = residual_action(w.normalizer, w.actor, w.cfg, flat_obs, base_action, noise)
        return checked_action(action, self.act_dim, "residual actor")


def checkpoint_weights(run_dir: str | Path) -> bytes:
    """The actor weights of a residual run's latest checkpoint, as a learner would publish them: a
    robot can run (or evaluate) a trained policy without a learner."""
    from robo_reward.rl.checkpoint import load_learner
    from robo_reward.rl.residual_policy import LATEST_CHECKPOINT
    from robo_reward.runtime.codecs import encode_actor_weights

    learner = load_learner(Path(run_dir) / LATEST_CHECKPOINT, "cpu")
    if not hasattr(learner, "actor_tensors"):
        raise MessageError(f"{run_dir} is a {learner.kind} run: only residual-td3 runs drive the robot actor")
    return encode_actor_weights(learner, f"checkpoint:{Path(run_dir).resolve()}", 1)


@dataclass
class CommandGate:
    """Decides, every control period, whether a command may go out (and says why not)."""

    stale_timeout_s: float

    def check(self, now: float, safety_ok: bool, episode_running: bool,
              input_times: Mapping[str, float]) -> tuple[bool, str]:
        if not safety_ok:
            return False, "safety monitor not OK"
        if not episode_running:
            return False, "no episode running"
        stale = [k for k, t in input_times.items() if now - t > self.stale_timeout_s]
        if stale:
            return False, f"stale observation: {stale}"
        return True, "ok"


def observation_from_parts(state: np.ndarray, env_state: np.ndarray | None,
                           images: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """The observation dict of docs/conventions.md from what the robot's topics delivered."""
    obs = {STATE_KEY: np.asarray(state, np.float32)}
    if env_state is not None:
        obs[ENV_STATE_KEY] = np.asarray(env_state, np.float32)
    for name, image in (images or {}).items():
        obs[f"observation.images.{name}"] = image
    return obs


def robot_observation_shapes(config: HardwareConfig) -> dict[str, tuple[int, ...] | None]:
    """What the robot actor's observations and commands hold: observation.state as `proprio_state`
    lays it out; the object state, whose size is whatever perception publishes (None); the action."""
    state = EE_POSE_DIM * len(config.topics.ee_poses) + len(config.gripper_joints) + config.num_joints
    return {STATE_KEY: (state,), ENV_STATE_KEY: None, "action": (config.command.action_dim,)}


def proprio_state(config: HardwareConfig, names: Sequence[str], positions: Sequence[float],
                  ee_poses: Sequence[tuple[Sequence[float], Sequence[float]]]) -> np.ndarray:
    """observation.state from /joint_states and the end-effector poses (quaternion x, y, z, w), through
    the processing step the simulator uses (`proprio_vector`)."""
    joints = joint_vector(config.joints.names, names, positions)
    grippers = joint_vector(config.gripper_joints, names, positions, "gripper position") \
        if config.gripper_joints else np.zeros(0)
    try:
        return proprio_vector(ee_poses, grippers, joints)
    except ValueError as exc:  # a malformed pose message: no observation, as for a malformed joint state
        raise JointStateError(f"end-effector pose: {exc}") from None
