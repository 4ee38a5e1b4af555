"""Commands shaped to respect the joint limits before they reach the robot (HIL-SERL's safety box,
LeRobot's end-effector bounds, in joint space): the safety monitor stays the last line, and a
policy that drives a joint toward its limit is turned aside or slowed down instead of stopped.

The policy commands end-effector deltas (OSC). With the arm's kinematics (hardware config
`kinematics`: a MuJoCo model of the arm) the limiter maps a command to the joint motion it asks for,
through the dynamically consistent inverse of the Jacobian at the current joint positions (what an
operational-space controller does), and then
  - removes the part of the command that would carry a joint closer to a position limit than
    `clearance`, counting the distance the joint coasts in `braking_s` at its current speed (the
    rest of the motion goes on: an arm near one limit is not frozen), and
  - scales the command so that no joint is asked for more than `slow_from` x its velocity limit
    (the commanded joint speed times the fraction `response` the arm reaches within a period).
A humanoid lists one model per arm, and each arm's command moves only its own joints. Each arm's
command is also scaled by what its joints do now (contact can move a joint where no command sends
it): their velocity headroom and their room toward the limit each moves to (the nearer one while
still); joints no arm's model covers scale every arm. Without kinematics that one factor, over all
joints, is all the limiter does. Gripper and hand elements pass unchanged. Sim and robot wrap their
env in the same `JointLimitGuard`, with the same limits.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robo_reward.errors import ConfigError
from robo_reward.safety.monitor import joint_vector

# info key: the joint state of the observation an env returned, as a driver names it:
# {"names": [...], "positions": [...], "velocities": [...] or None}
JOINT_STATE_KEY = "joint_state"


@dataclass(frozen=True)
class JointReading:
    """Joint positions (rad) and velocities (rad/s) of the limited joints, in their config order."""

    positions: np.ndarray
    velocities: np.ndarray


class ArmModel:
    """The joint motion a unit end-effector command asks of one arm, from a MuJoCo model of it
    (hardware config `kinematics`, one per arm): its joints are found in the model by name, the
    model's other joints (a humanoid's waist, legs, the other arm) stay at their reference positions."""

    def __init__(self, kinematics, limited: Sequence[str], where: str = "kinematics"):
        import mujoco

        kin = kinematics
        self.model = _load_model(kin.model, where)
        self.data = mujoco.MjData(self.model)
        self.body = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_BODY, kin.body)
        if self.body < 0:
            raise ConfigError(f"{where}.body {kin.body!r} is not a body of {kin.model}")
        ids = {name: mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in kin.joints.values()}
        missing = [name for name, i in ids.items() if i < 0]
        if missing:
            raise ConfigError(f"{where}.joints: {kin.model} has no joints named {missing}")
        hinge_or_slide = (mujoco.mjtJoint.mjJNT_HINGE, mujoco.mjtJoint.mjJNT_SLIDE)
        free = [name for name, i in ids.items() if self.model.jnt_type[i] not in hinge_or_slide]
        if free:
            raise ConfigError(f"{where}.joints: {free} in {kin.model} are not hinge or slide joints")
        model_joints = [ids[kin.joints[name]] for name in kin.joints]
        self.joint_index = np.array([list(limited).index(name) for name in kin.joints])  # in the limited joints
        self.qpos = self.model.jnt_qposadr[model_joints]
        self.dof = self.model.jnt_dofadr[model_joints]
        self.action_dims = tuple(kin.action_dims)
        self.point = np.asarray(kin.point, float)
        self.scale = np.diag(np.asarray(kin.delta_scale, float))
        self.response = kin.response

    def _forward(self, q: np.ndarray) -> None:
        import mujoco

        self.data.qpos[:] = self.model.qpos0
        self.data.qpos[self.qpos] = q
        mujoco.mj_forward(self.model, self.data)

    def _jacobian(self) -> np.ndarray:
        import mujoco

        m, d = self.model, self.data
        point = d.xpos[self.body] + d.xmat[self.body].reshape(3, 3) @ self.point
        jac_pos, jac_rot = np.zeros((3, m.nv)), np.zeros((3, m.nv))
        mujoco.mj_jac(m, d, jac_pos, jac_rot, point, self.body)
        return np.vstack([jac_pos, jac_rot])[:, self.dof]

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, arm joints): the end-effector point's linear and angular velocity per joint velocity."""
        self._forward(q)
        return self._jacobian()

    def joint_steps(self, q: np.ndarray, damping: float = 0.05) -> np.ndarray:
        """(arm joints, 6): joint displacement per control step for each unit command element,
        M^-1 J^T (J M^-1 J^T + damping^2 I)^-1 S at the arm's joint positions q."""
        import mujoco

        self._forward(q)
        jac = self._jacobian()
        mass = np.zeros((self.model.nv, self.model.nv))
        mujoco.mj_fullM(self.model, mass, self.data.qM)
        minv_jt = np.linalg.solve(mass[np.ix_(self.dof, self.dof)], jac.T)
        return minv_jt @ np.linalg.solve(jac @ minv_jt + damping**2 * np.eye(6), self.scale)


@functools.lru_cache(maxsize=8)
def _load_model(model: str, where: str):
    """One MjModel per model file (both arms of a humanoid share it; each arm keeps its own MjData)."""
    import mujoco

    path = _model_path(model, where)
    try:
        return mujoco.MjModel.from_xml_path(str(path))
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{where}.model {model!r}: MuJoCo cannot load {path} ({exc})") from None


def _model_path(model: str, where: str) -> Path:
    if model.startswith("robosuite:"):
        import robosuite

        path = Path(robosuite.__file__).parent / "models" / "assets" / "robots" / model.split(":", 1)[1] / "robot.xml"
    else:
        path = Path(model)
    if not path.is_file():
        raise ConfigError(f"{where}.model {model!r}: no model file at {path}")
    return path


@dataclass(frozen=True)
class JointLimits:
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    velocity: np.ndarray
    arm_dims: tuple[int, ...]  # the action elements that move these joints
    control_period_s: float = 0.05
    slow_from: float = 0.7  # the largest commanded joint speed, as a fraction of the velocity limit
    clearance: float = 0.05  # rad kept clear of the position limits
    braking_s: float = 0.3  # a moving joint counts what it coasts in this time (a zero command stops it over a few periods)
    arms: tuple[ArmModel, ...] = ()  # the kinematics of each arm, when the config has them

    @classmethod
    def from_hardware(cls, config) -> JointLimits:
        """The limits the safety monitor checks (with its position margin), from a HardwareConfig."""
        j, s = config.joints, config.safety
        dims = config.command.limited_dims
        arm_dims = tuple(range(config.command.action_dim)) if dims is None else tuple(dims)
        arms = tuple(ArmModel(kin, j.names, f"kinematics[{i}]") for i, kin in enumerate(config.kinematics)) \
            if arm_dims else ()
        if arms:
            arm_dims = tuple(d for arm in arms for d in arm.action_dims)
        return cls(tuple(j.names), *config.joint_bounds(), np.asarray(j.velocity_limit, float), arm_dims,
                   config.control_period_s, s.slow_from, s.limit_clearance, s.braking_time_s, arms)

    def room(self, reading: JointReading) -> tuple[np.ndarray, np.ndarray]:
        """How far (rad) each joint may still move up and down: to the limit less the clearance and
        what it coasts at its speed now (negative: it must move away)."""
        q, dq = np.asarray(reading.positions, float), np.asarray(reading.velocities, float)
        up = self.upper - self.clearance - q - np.maximum(dq, 0.0) * self.braking_s
        down = q - self.lower - self.clearance - np.maximum(-dq, 0.0) * self.braking_s
        return up, down

    def joint_steps(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(joints, arm_dims): each joint's displacement per control step for each unit arm command
        element (block-diagonal: an arm's command moves only its own joints), and (joints,) the
        fraction of it each joint reaches within a period (0 for joints no arm model covers)."""
        steps, response = np.zeros((len(self.names), len(self.arm_dims))), np.zeros(len(self.names))
        column = 0
        for arm in self.arms:
            block = arm.joint_steps(q[arm.joint_index])
            steps[arm.joint_index, column:column + block.shape[1]] = block
            response[arm.joint_index] = arm.response
            column += block.shape[1]
        return steps, response

    def limit(self, command: np.ndarray, reading: JointReading) -> np.ndarray:
        """The arm command (the `arm_dims` elements) that respects the limits at this joint state."""
        command = np.asarray(command, float)
        up, down = self.room(reading)
        if not self.arms:
            return command * self.scale(reading, up, down)
        steps, response = self.joint_steps(np.asarray(reading.positions, float))
        # half-spaces rows @ x <= bounds (each joint's step up and down within its room; at most a
        # small step away from a limit it is already too close to), met by cyclic projection
        rows = np.vstack([steps, -steps])
        bounds = np.maximum(np.concatenate([up, down]), -0.05)
        x = command.copy()
        for _ in range(5):
            excess = rows @ x - bounds
            if excess.max() <= 1e-9:
                break
            for i in np.flatnonzero(excess > 1e-9):
                over = rows[i] @ x - bounds[i]
                if over > 0:
                    x -= over / (rows[i] @ rows[i]) * rows[i]
        x = np.clip(x, -1.0, 1.0)
        speed = np.abs(steps @ x) / self.control_period_s * response
        by_command = self.slow_from * self.velocity / np.maximum(speed, 1e-9)
        # the model knows where the command sends the arm, not where contact pushes it: what each
        # arm's joints do now still scales its command (a still joint near its limit holds its arm:
        # dropping that let the Panda's joint 6 sit on its stop, docs/BENCHMARKS.md)
        per_joint = np.minimum(by_command, self.joint_factors(reading, up, down))
        uncovered = np.ones(len(self.names), bool)  # joints no arm model covers slow every arm
        for arm in self.arms:
            uncovered[arm.joint_index] = False
        everyone = per_joint[uncovered].min() if uncovered.any() else 1.0
        column = 0
        for arm in self.arms:
            width = len(arm.action_dims)
            x[column:column + width] *= float(np.clip(min(per_joint[arm.joint_index].min(), everyone), 0.0, 1.0))
            column += width
        return x

    def scale(self, reading: JointReading, up: np.ndarray, down: np.ndarray) -> float:
        """One factor for the whole arm command from what the joints do now: the velocity headroom
        above `slow_from` and the room toward the limit each joint moves to (the nearer one while
        still). All the limiter does without kinematics."""
        return float(np.clip(self.joint_factors(reading, up, down).min(), 0.0, 1.0))

    def joint_factors(self, reading: JointReading, up: np.ndarray, down: np.ndarray) -> np.ndarray:
        """Per joint, the fraction of the command its state allows: its velocity headroom above
        `slow_from`, and its room toward the limit it moves to (a still joint: the nearer one) over
        `clearance`."""
        velocity = np.asarray(reading.velocities, float)
        by_velocity = (1.0 - np.abs(velocity) / self.velocity) / (1.0 - self.slow_from)
        still = np.abs(velocity) < 0.05 * self.velocity
        ahead = np.where(still, np.minimum(up, down), np.where(velocity > 0, up, down))
        return np.minimum(by_velocity, ahead / self.clearance)


class JointLimitGuard(gym.Wrapper):
    """Limits the arm part of every command at the latest joint state (the env reports it in
    info[JOINT_STATE_KEY]); info["executed_action"] is what went out and info["limit_change"] the
    largest change the limiter made to an element."""

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
        limited = np.array(action, np.float32, copy=True).reshape(-1)
        if self._arm.size:
            limited[self._arm] = self.limits.limit(limited[self._arm], self._reading)
        change = float(np.abs(limited - np.asarray(action, np.float32).reshape(-1)).max())
        next_obs, reward, terminated, truncated, info = self.env.step(limited)
        if info.get("executed", True):
            self._reading = self._joint_state(info)
        info.setdefault("executed_action", limited)
        return next_obs, reward, terminated, truncated, dict(info, limit_change=change)


def joint_reading(limited: Sequence[str], names: Sequence[str], positions: Sequence[float],
                  velocities: Sequence[float] | None) -> JointReading:
    """The `limited` joints' reading from a named joint state (a JointState message, a simulator);
    a driver that reports no velocities leaves only the position headroom."""
    q = joint_vector(limited, names, positions)
    dq = joint_vector(limited, names, velocities, "velocity") if velocities is not None and len(velocities) \
        else np.zeros_like(q)
    return JointReading(q, dq)
