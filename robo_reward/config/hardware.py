"""Hardware configs: one YAML per robot (hardware_configs/*.yaml), validated before anything moves.

Every robot — real or simulated — is described by the same fields, so the ROS 2 nodes, the
safety monitor and the reset manager never branch on the robot. A bad file is rejected with the
file, the field and the problem (`HardwareConfigError`), never half-applied.

Units: radians and rad/s for joints, metres for the workspace box (robot base frame), newtons and
newton-metres for wrench limits, seconds for timeouts. Commands in the `normalized_action`
interface follow docs/conventions.md (policy actions in [-1, 1]).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from robo_reward.envs.rendering import RenderSettings, parse_render
from robo_reward.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parents[2] / "hardware_configs"
_TOPIC = re.compile(r"^/?[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*$")


class HardwareConfigError(ConfigError):
    """A hardware config file is unreadable or has an invalid field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _topic(value: str) -> str:
    if not _TOPIC.match(value):
        raise ValueError(f"{value!r} is not a valid ROS topic name (letters, digits, '_' and '/' separators)")
    return value


class Joints(_Strict):
    """The controlled joints, in the order every joint vector of this robot uses."""

    names: list[str] = Field(min_length=1)
    position_lower: list[float]
    position_upper: list[float]
    velocity_limit: list[float]  # rad/s, > 0

    @model_validator(mode="after")
    def _consistent(self):
        n = len(self.names)
        if len(set(self.names)) != n:
            raise ValueError(f"joint names repeat: {sorted({x for x in self.names if self.names.count(x) > 1})}")
        for field in ("position_lower", "position_upper", "velocity_limit"):
            if len(getattr(self, field)) != n:
                raise ValueError(f"{field} has {len(getattr(self, field))} values for {n} joints")
        bad = [self.names[i] for i in range(n) if not self.position_lower[i] < self.position_upper[i]]
        if bad:
            raise ValueError(f"position_lower must be below position_upper for joints {bad}")
        bad = [self.names[i] for i in range(n) if not self.velocity_limit[i] > 0]
        if bad:
            raise ValueError(f"velocity_limit must be > 0 for joints {bad}")
        return self


class Home(_Strict):
    """Where the reset manager brings the robot between episodes."""

    positions: list[float]
    randomize: float | list[float] = 0.0  # uniform +- offset per joint (rad), clipped into the limits
    tolerance: float = Field(0.02, gt=0)  # rad: the home pose counts as reached within this
    speed_fraction: float = Field(0.25, gt=0, le=1)  # reset motion at this fraction of the velocity limits


class Workspace(_Strict):
    """Axis-aligned end-effector box in the robot base frame (metres)."""

    min: list[float] = Field(min_length=3, max_length=3)
    max: list[float] = Field(min_length=3, max_length=3)

    @model_validator(mode="after")
    def _ordered(self):
        if not all(lo < hi for lo, hi in zip(self.min, self.max)):
            raise ValueError(f"min {self.min} must be below max {self.max} on every axis")
        return self


class SafetyLimits(_Strict):
    # largest change of a command element between control steps: one value, or one per action element
    # (a gripper that flips open/closed needs 2.0 while the arm deltas stay small)
    max_command_delta: float | list[float]
    max_force: float = Field(gt=0)  # N, norm of the measured end-effector force
    max_torque: float = Field(gt=0)  # N m, norm of the measured end-effector torque
    stale_timeout_s: float = Field(gt=0)  # state older than this stops commands
    position_margin: float = Field(0.0, ge=0)  # rad kept clear of the joint limits
    # the command limiter (robo_reward.envs.limits) in front of the monitor: arm commands fade out
    # above this fraction of a joint's velocity limit, and within this distance (rad) of its limits
    slow_from: float = Field(0.7, gt=0, lt=1)
    limit_clearance: float = Field(0.05, gt=0)
    braking_time_s: float = Field(0.3, ge=0)  # a joint coasts about speed x this after a zero command


class Command(_Strict):
    """How commands reach the driver. `normalized_action`: the policy's [-1, 1] action vector as
    std_msgs/Float64MultiArray (a ros2_control forward controller or a Cartesian delta controller);
    `joint_position` / `joint_trajectory`: joint targets for resets (Float64MultiArray / JointTrajectory)."""

    interface: Literal["normalized_action"] = "normalized_action"
    action_dim: int = Field(gt=0)
    topic: str = "/robo_reward/command"
    reset_interface: Literal["joint_position", "joint_trajectory"] = "joint_position"
    reset_topic: str = "/robo_reward/joint_position_command"
    # the action elements that move the limited joints (arm deltas; not grippers or hands): the
    # command limiter scales these. None: all of them
    limited_dims: list[int] | None = None

    check_topics = field_validator("topic", "reset_topic")(_topic)


class ArmKinematics(_Strict):
    """One arm's kinematics for the command limiter (robo_reward.envs.limits): a MuJoCo model of the
    arm (MJCF, or URDF), the end-effector point the commands move, which of the config's joints it
    moves (by the model's names for them) and what one unit of command asks of it. Without it the
    limiter can only scale whole commands. A humanoid lists one per arm."""

    model: str  # `robosuite:<robot>` (robosuite's own model of it) or a path relative to this config
    body: str  # the model's body that carries the end effector
    point: list[float] = Field([0.0, 0.0, 0.0], min_length=3, max_length=3)  # in that body's frame, metres
    # each of the config's joints this arm moves -> the model's joint of that name (the other model
    # joints stay at the model's reference positions)
    joints: dict[str, str] = Field(min_length=1)
    action_dims: list[int] = Field(min_length=6, max_length=6)  # x y z rx ry rz deltas of this arm
    # metres / radians per control step at command 1 (the controller's output_max)
    delta_scale: list[float] = Field(min_length=6, max_length=6)
    # the fraction of the commanded joint speed the arm reaches within a control period
    response: float = Field(0.5, gt=0, le=1)


class Topics(_Strict):
    joint_states: str = "/joint_states"
    # geometry_msgs/PoseStamped per end effector, in the order of observation.state (humanoids: right, left)
    ee_poses: list[str] = Field(default_factory=lambda: ["/robo_reward/ee_pose"], min_length=1)
    wrench: str = "/robo_reward/wrench"  # geometry_msgs/WrenchStamped
    object_state: str = "/robo_reward/object_state"  # stamped named values (sensor_msgs/JointState) from perception or the sim
    estop: str = "/robo_reward/estop"  # std_msgs/Bool, True = stop

    check_topics = field_validator("*")(lambda v: [_topic(x) for x in v] if isinstance(v, list) else _topic(v))


class Camera(_Strict):
    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    topic: str
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    rate_hz: float = Field(gt=0)
    source: int | str | None = None  # camera node: device index, video file or stream URL; None in sim

    check_topics = field_validator("topic")(_topic)


class Simulation(_Strict):
    task: str
    robot: str
    image_size: int = Field(64, ge=32)  # rendered camera size (square) published by the sim robot (recorded as video)
    render: str = "fast"  # how its frames are drawn: a preset, optionally with overrides (robo_reward.envs.rendering)

    @field_validator("render")
    @classmethod
    def _known_render(cls, value: str) -> str:
        parse_render(value, "sim.render")
        return value

    def render_settings(self) -> RenderSettings:
        return parse_render(self.render, "sim.render")


class HardwareConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    kind: Literal["arm", "humanoid", "sim"]
    description: str = ""
    control_rate_hz: float = Field(gt=0, le=1000)
    joints: Joints
    gripper_joints: list[str] = []  # reported in /joint_states, not limited by the monitor
    home: Home
    workspace: Workspace
    safety: SafetyLimits
    command: Command
    topics: Topics = Topics()
    cameras: list[Camera] = []
    operator_confirmation: bool = True  # real hardware: an operator confirms every episode start
    sim: Simulation | None = None
    kinematics: list[ArmKinematics] = []  # one per arm (end effector) the commands move

    @field_validator("kinematics", mode="before")
    @classmethod
    def _kinematics_list(cls, value):
        if isinstance(value, dict):
            raise ValueError("expected a list with one entry per arm (each with a `joints` map of the config's "
                             "joint names to the model's), got a single mapping")
        return value

    @model_validator(mode="after")
    def _cross_checks(self):
        n = len(self.joints.names)
        if len(self.home.positions) != n:
            raise ValueError(f"home.positions has {len(self.home.positions)} values for {n} joints")
        if isinstance(self.home.randomize, list) and len(self.home.randomize) != n:
            raise ValueError(f"home.randomize has {len(self.home.randomize)} values for {n} joints")
        lo, hi = np.asarray(self.joints.position_lower), np.asarray(self.joints.position_upper)
        home = np.asarray(self.home.positions)
        m = self.safety.position_margin
        outside = [self.joints.names[i] for i in np.flatnonzero((home < lo + m) | (home > hi - m))]
        if outside:
            raise ValueError(f"home.positions outside the joint limits (with margin {m}) for {outside}")
        delta = self.safety.max_command_delta
        if isinstance(delta, list) and len(delta) != self.command.action_dim:
            raise ValueError(f"safety.max_command_delta has {len(delta)} values for command.action_dim "
                             f"{self.command.action_dim}")
        if min(np.atleast_1d(delta)) <= 0:
            raise ValueError("safety.max_command_delta must be > 0")
        dims = self.command.limited_dims
        if dims is not None and not all(0 <= d < self.command.action_dim for d in dims):
            raise ValueError(f"command.limited_dims {dims} must be action elements 0..{self.command.action_dim - 1}")
        self._check_kinematics()
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ValueError(f"camera names repeat: {names}")
        if (self.kind == "sim") != (self.sim is not None):
            raise ValueError("kind 'sim' needs a 'sim' section (task, robot), and only sim robots have one")
        return self

    def _check_kinematics(self) -> None:
        moved, dims = [], []
        for i, arm in enumerate(self.kinematics):
            unknown = [j for j in arm.joints if j not in self.joints.names]
            if unknown:
                raise ValueError(f"kinematics[{i}].joints {unknown} are not in joints.names")
            twice = sorted({m for m in arm.joints.values() if list(arm.joints.values()).count(m) > 1})
            if twice:
                raise ValueError(f"kinematics[{i}].joints maps two config joints to the model joints {twice}")
            if len(set(arm.action_dims)) != len(arm.action_dims):
                raise ValueError(f"kinematics[{i}].action_dims {arm.action_dims} repeat an element")
            if not all(0 <= d < self.command.action_dim for d in arm.action_dims):
                raise ValueError(f"kinematics[{i}].action_dims {arm.action_dims} must be action elements "
                                 f"0..{self.command.action_dim - 1}")
            moved += list(arm.joints)
            dims += arm.action_dims
        if len(set(moved)) != len(moved):
            both = sorted(j for j in set(moved) if moved.count(j) > 1)
            raise ValueError(f"kinematics: a joint is moved by two arms ({both})")
        if len(set(dims)) != len(dims):
            both = sorted(d for d in set(dims) if dims.count(d) > 1)
            raise ValueError(f"kinematics: an action element drives two arms ({both})")
        limited = self.command.limited_dims
        if dims and limited is not None and sorted(dims) != sorted(limited):
            raise ValueError(f"kinematics action_dims {sorted(dims)} must be the command's limited_dims {sorted(limited)}")

    @property
    def num_joints(self) -> int:
        return len(self.joints.names)

    @property
    def control_period_s(self) -> float:
        return 1.0 / self.control_rate_hz

    def joint_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Joint position limits less the safety margin: what the monitor checks and the command
        limiter keeps clear of."""
        m = self.safety.position_margin
        return np.asarray(self.joints.position_lower, float) + m, np.asarray(self.joints.position_upper, float) - m


def _format(error: ValidationError) -> list[str]:
    lines = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"field '{where}': {msg}")
    return lines


def parse_hardware_config(data: object, source: str = "<config>") -> HardwareConfig:
    if not isinstance(data, dict):
        raise HardwareConfigError(f"{source}: expected a mapping of fields at the top level, got {type(data).__name__}")
    try:
        config = HardwareConfig.model_validate(data)
    except ValidationError as exc:
        raise HardwareConfigError(f"{source}: " + "; ".join(_format(exc))) from None
    if Path(source).is_file():  # kinematics models are relative to the config file
        arms = [arm if arm.model.startswith("robosuite:")
                else arm.model_copy(update={"model": str((Path(source).parent / arm.model).resolve())})
                for arm in config.kinematics]
        config = config.model_copy(update={"kinematics": arms})
    return config


def share_dirs() -> list[Path]:
    """`share/` of each ROS 2 install prefix (AMENT_PREFIX_PATH), then of this Python environment
    (where the ros-kilted wheels put message definitions)."""
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    return [Path(p) / "share" for p in prefixes]


def config_dirs() -> list[Path]:
    """The repository's hardware_configs/, then share/robo_reward/hardware_configs of each ROS 2
    prefix (where `colcon build` installs them on a robot)."""
    return [CONFIG_DIR] + [share / "robo_reward" / "hardware_configs" for share in share_dirs()]


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a shipped config (e.g. `franka_panda`, `sim_panda_lift`)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    for directory in config_dirs():
        if (directory / f"{name_or_path}.yaml").is_file():
            return directory / f"{name_or_path}.yaml"
    names = sorted({p.stem for d in config_dirs() for p in d.glob("*.yaml")})
    raise HardwareConfigError(f"no hardware config {str(name_or_path)!r}: not a file, and not one of {names}")


def load_hardware_config(name_or_path: str | Path) -> HardwareConfig:
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise HardwareConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise HardwareConfigError(f"{path}: not valid YAML ({exc})") from None
    return parse_hardware_config(data, str(path))


def sim_hardware_config(task: str, robot: str) -> HardwareConfig:
    """The shipped config of a simulated robot (kind sim): the limits `rl train` and `ros up` share."""
    for directory in config_dirs():
        for path in sorted(directory.glob("*.yaml")):
            data = yaml.safe_load(path.read_text())
            if isinstance(data, dict) and (data.get("sim") or {}).get("task") == task and \
                    data["sim"].get("robot") == robot:
                return parse_hardware_config(data, str(path))
    raise HardwareConfigError(f"no hardware config describes the simulated {robot} on {task!r} "
                              f"(a kind: sim config with sim.task/sim.robot) in {[str(d) for d in config_dirs()]}")
