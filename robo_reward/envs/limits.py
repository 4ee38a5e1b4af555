"""Commands shaped to respect the joint limits before they reach the robot (HIL-SERL's safety box,
LeRobot's end-effector bounds, in joint space): the safety monitor stays the last line, and a
policy that drives a joint toward its limit is slowed down instead of stopped.

The policy commands the end effector (OSC deltas), so which way a command moves each joint is not
known without the robot's kinematics. What is known is where each joint is and how fast it moves,
and that a zero arm command holds the pose (the delta controllers brake). So the arm part of the
command is scaled by one factor in [0, 1], the smallest over the joints of
  - velocity headroom: 1 below `slow_from` x the velocity limit, falling linearly to 0 at the limit;
  - position headroom: the distance to the limit the joint moves toward (the nearer one while it is
    still), less the distance it coasts in `braking_s` at its current speed (a zero
    command stops a joint over a few control periods, not at once), over `clearance`.
Gripper and hand elements pass unchanged. Sim and robot wrap their env in the same `JointLimitGuard`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.safety.monitor import joint_vector

# info key: the joint state of the observation an env returned, as a driver names it:
# {"names": [...], "positions": [...], "velocities": [...] or None}
JOINT_STATE_KEY = "joint_state"


@dataclass(frozen=True)
class JointReading:
    """Joint positions (rad) and velocities (rad/s) of the limited joints, in their config order."""

    positions: np.ndarray
    velocities: np.ndarray


@dataclass(frozen=True)
class JointLimits:
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    arm_dims: tuple[int, ...]  # the action elements that move these joints (scaled by the guard)
    slow_from: float = 0.7  # fraction of the velocity limit where slowing down starts
    clearance: float = 0.15  # rad: commands toward a joint limit fade out over this distance
    braking_s: float = 0.3  # a moving joint's headroom counts what it covers in this time (it coasts)

    @classmethod
    def from_hardware(cls, config) -> JointLimits:
        """The limits the safety monitor checks (with its position margin), from a HardwareConfig."""
        j, m = config.joints, config.safety.position_margin
        dims = config.command.limited_dims
        return cls(tuple(j.names), np.asarray(j.position_lower, float) + m, np.asarray(j.position_upper, float) - m,
                   np.asarray(j.velocity_limit, float),
                   tuple(range(config.command.action_dim)) if dims is None else tuple(dims),
                   config.safety.slow_from, config.safety.limit_clearance, config.safety.braking_time_s)

    def scale(self, reading: JointReading) -> float:
        """The factor for the arm command at this joint state (1: no joint near a limit)."""
        q, dq = np.asarray(reading.positions, float), np.asarray(reading.velocities, float)
        speed = np.abs(dq)
        by_velocity = (1.0 - speed / self.velocity) / (1.0 - self.slow_from)
        still = speed < 0.05 * self.velocity
        to_upper, to_lower = self.upper - q, q - self.lower
        ahead = np.where(still, np.minimum(to_upper, to_lower), np.where(dq > 0, to_upper, to_lower))
        by_position = (ahead - speed * self.braking_s) / self.clearance
        return float(np.clip(min(by_velocity.min(), by_position.min()), 0.0, 1.0))


class JointLimitGuard(gym.Wrapper):
    """Scales the arm part of every command by `JointLimits.scale` of the latest joint state (the env
    reports it in info[JOINT_STATE_KEY]); info["executed_action"] is what went out and
    info["limit_scale"] the factor used."""

    def __init__(self, env: gym.Env, limits: JointLimits):
        super().__init__(env)
        self.limits = limits
        self._arm = np.asarray(limits.arm_dims, int)
        self._reading: JointReading | None = None

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        self._reading = self._joint_state(info)
        return obs, info

    def _joint_state(self, info: dict) -> JointReading:
        state = info.get(JOINT_STATE_KEY)
        if state is None:
            raise RuntimeError(f"{type(self.env.unwrapped).__name__} reports no {JOINT_STATE_KEY!r}: "
                               "the joint limit guard cannot see the joints")
        return joint_reading(self.limits.names, state["names"], state["positions"], state.get("velocities"))

    def step(self, action):
        if self._reading is None:
            raise RuntimeError("step before reset")
        scale = self.limits.scale(self._reading)
        limited = np.array(action, np.float32, copy=True).reshape(-1)
        limited[self._arm] *= scale
        next_obs, reward, terminated, truncated, info = self.env.step(limited)
        if info.get("executed", True):
            self._reading = self._joint_state(info)
        info.setdefault("executed_action", limited)
        return next_obs, reward, terminated, truncated, dict(info, limit_scale=scale)


def joint_reading(limited: Sequence[str], names: Sequence[str], positions: Sequence[float],
                  velocities: Sequence[float] | None) -> JointReading:
    """The `limited` joints' reading from a named joint state (a JointState message, a simulator);
    a driver that reports no velocities leaves only the position headroom."""
    q = joint_vector(limited, names, positions)
    dq = joint_vector(limited, names, velocities, "velocity") if velocities is not None and len(velocities) \
        else np.zeros_like(q)
    return JointReading(q, dq)
