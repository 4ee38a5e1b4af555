"""Gymnasium wrapper around robosuite tasks that follows docs/conventions.md.

``make_env(task, robot, cameras=...)`` builds a :class:`RobosuiteEnv` whose observations are
dicts with LeRobot-style keys and whose actions are float32 vectors in [-1, 1].

Seeding
-------
robosuite 1.5.1 draws every random choice of a reset (object placement, cube size at
construction, robot joint initialisation noise) from NumPy's *global* legacy generator
(``np.random``); its own ``seed``/``self.rng`` argument is stored but unused. This wrapper keeps
a private ``np.random.RandomState`` per environment and swaps it in as the global state only
for the duration of robosuite's construction and ``reset()`` calls, then restores the caller's
global state. Consequently:

* ``reset(seed=s)`` always produces the same initial state for the same ``s`` (on the same
  machine and library versions), independently of what else used ``np.random``;
* ``reset()`` without a seed continues the environment's own stream, so consecutive resets
  differ; ``make_env(..., seed=s)`` makes that whole stream reproducible;
* randomness drawn while robosuite builds the model (the Lift cube's size) always uses seed 0,
  so every instance of a task/robot has the same model and ``reset(seed=s)`` gives the same
  initial state in every instance and process;
* the process-wide ``np.random`` state is left untouched.

Frames
------
Positions in ``observation.state`` and ``observation.environment_state`` are in robosuite's
world frame. The robot base is fixed in every supported task, so this differs from the
robot-base frame of a real robot only by a constant transform.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robo_reward.envs.limits import JOINT_STATE_KEY
from robo_reward.envs.observations import (EE_POSE_DIM, IMAGE_PREFIX, OBSERVATION_FORMAT, ROTATION_DIM, object_vector,
                                           proprio_vector)
from robo_reward.envs.rendering import DEFAULT_RENDER, RenderSettings
from sim.rendering import SceneRenderer

__all__ = [
    "ROBOTS",
    "TASKS",
    "RobosuiteEnv",
    "RobotSpec",
    "TaskSpec",
    "make_env",
    "resolve_robot",
    "resolve_task",
]

CONTROL_FREQ = 20  # Hz


@dataclass(frozen=True)
class TaskSpec:
    """A task of the registry: which robosuite environment, with which robots."""

    env_name: str
    robots: tuple[str, ...]
    horizon: int  # default episode length in control steps
    text: str  # natural-language instruction
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    # Per-robot overrides (canonical robot name -> horizon / robosuite env name / extra kwargs).
    robot_horizon: dict[str, int] = field(default_factory=dict)
    robot_env_name: dict[str, str] = field(default_factory=dict)
    robot_env_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class RobotSpec:
    """A supported robot: the robosuite model name and how to build its controller."""

    robosuite_name: str
    family: str  # "arm" (single arm, OSC_POSE + gripper) or "humanoid"
    controller: str | None  # composite controller name passed to load_composite_controller_config
    aliases: tuple[str, ...] = ()
    # per arm controller part: the joint posture its OSC's null-space torques pull the arm's
    # redundancy (the elbow's swivel) toward; robosuite's own is the pose at reset
    nullspace_posture: tuple[tuple[str, tuple[float, ...]], ...] = ()


TASKS: dict[str, TaskSpec] = {
    "lift": TaskSpec(
        env_name="Lift",
        robots=("Panda", "GR1"),
        horizon=100,  # scripted Panda demo succeeds in ~40 steps
        text="lift the red cube",
        # robosuite places GR1 0.55 m behind the centre of a 0.8 m table top at 0.8 m height: the
        # cube is then ~0.7 m from either shoulder, beyond the ~0.5 m arm reach. A shorter (0.4 m
        # deep) table brings the robot 0.2 m closer and a 0.95 m table top lifts the cube to the
        # hands (success is still "cube 4 cm above the table top"). The cube lies 0.2 m right of the
        # midline, in front of the right hand that lifts it: at the midline the right arm reaches it
        # only by riding its shoulder roll's stop, where the joint limit guard holds it (guarded
        # scripted demonstrator 19/40 there, 40/40 here; docs/BENCHMARKS.md "GR1 cube placement").
        robot_horizon={"GR1": 120},  # scripted GR1 demo succeeds in ~50-70 steps
        robot_env_name={"GR1": "LiftTableHeight"},
        robot_env_kwargs={"GR1": {"table_full_size": (0.4, 0.8, 0.05), "table_height": 0.95,
                                  "cube_offset": (0.0, -0.2)}},
    ),
    "can": TaskSpec(
        env_name="PickPlaceCan",
        robots=("Panda",),
        horizon=200,  # scripted demo succeeds in ~115-150 steps
        text="pick up the can and place it in the bin",
    ),
}

ROBOTS: dict[str, RobotSpec] = {
    "Panda": RobotSpec(robosuite_name="Panda", family="arm", controller=None),
    # GR1 with the legs removed: two OSC_POSE arms + two 6-dof Fourier hands under the BASIC
    # composite controller. (GR1FixedLowerBody's default controller needs whole-body IK code the
    # robosuite wheel does not ship; with BASIC it would add torso/head joint dimensions that the
    # tabletop task does not need.)
    "GR1": RobotSpec(
        robosuite_name="GR1ArmsOnly",
        family="humanoid",
        controller="BASIC",
        aliases=("GR1ArmsOnly",),
        # reaching the cube from robosuite's posture (shoulder roll -0.1, yaw 0) drives the right
        # shoulder roll into its stop at 0.0 (the hand moves inward by adduction), where the
        # command limiter's clearance stops the arm; pulling the swivel toward roll -0.6 with the
        # upper arm turned inward (yaw 0.6) reaches it with the shoulder turned instead
        # (docs/BENCHMARKS.md "GR1 under the joint limit guard"). The left arm keeps robosuite's.
        nullspace_posture=(("right", (0.0, -0.6, 0.6, -1.57, 0.0, 0.0, 0.0)),),
    ),
}


def _choices(names) -> str:
    return ", ".join(repr(n) for n in names)


def resolve_task(task: str) -> str:
    key = str(task).lower()
    if key not in TASKS:
        raise ValueError(f"unknown task {task!r}; valid tasks: {_choices(TASKS)}")
    return key


def task_episode(task: str, robot: str) -> tuple[int, str]:
    """The task's episode for `robot`: its default time limit (control steps) and its instruction."""
    spec = TASKS[resolve_task(task)]
    return spec.robot_horizon.get(resolve_robot(robot, task), spec.horizon), spec.text


def resolve_robot(robot: str, task: str | None = None) -> str:
    """Canonical robot name for ``robot`` (case-insensitive; aliases accepted)."""
    lookup: dict[str, str] = {}
    for name, spec in ROBOTS.items():
        lookup[name.lower()] = name
        for alias in spec.aliases:
            lookup[alias.lower()] = name
    name = lookup.get(str(robot).lower())
    if task is not None:
        valid = TASKS[resolve_task(task)].robots
        if name not in valid:
            raise ValueError(f"robot {robot!r} is not supported for task {task!r}; valid robots: {_choices(valid)}")
    elif name is None:
        raise ValueError(f"unknown robot {robot!r}; valid robots: {_choices(ROBOTS)}")
    return name


_CUSTOM_ENVS: dict[str, type] = {}


def _register_custom_envs() -> None:
    """Define (once) robosuite env subclasses used by the registry; robosuite's metaclass
    registers every subclass by class name, so ``robosuite.make(name)`` then finds them."""
    if _CUSTOM_ENVS:
        return
    from robosuite.environments.manipulation.lift import Lift

    class LiftTableHeight(Lift):
        """robosuite Lift with a configurable table-top height (Lift hard-codes 0.8 m) and the
        centre of the cube's placement range moved by ``cube_offset`` (x, y) m from the table's."""

        def __init__(self, *args, table_height: float = 0.8, cube_offset=(0.0, 0.0), **kwargs):
            self._table_height = float(table_height)
            self._cube_offset = np.array((*cube_offset, 0.0), dtype=np.float64)
            super().__init__(*args, **kwargs)

        def _load_model(self):
            self.table_offset = np.array((0.0, 0.0, self._table_height))
            super()._load_model()
            # Lift keeps its sampler across model reloads: set the centre, never add to it
            self.placement_initializer.reference_pos = self.table_offset + self._cube_offset

    _CUSTOM_ENVS["LiftTableHeight"] = LiftTableHeight


def _scale_placement(sampler, scale: float) -> None:
    """Widen (or narrow) the x/y ranges objects are placed in at reset, about their centres: a test of
    how far a policy generalises beyond the placements it was trained on."""
    for inner in getattr(sampler, "samplers", {}).values():
        _scale_placement(inner, scale)
    for attr in ("x_range", "y_range"):
        low, high = getattr(sampler, attr, None) or (None, None)
        if low is not None:
            centre, half = (low + high) / 2, (high - low) / 2
            setattr(sampler, attr, [centre - scale * half, centre + scale * half])


@contextlib.contextmanager
def _global_np_random(rng: np.random.RandomState):
    """Make ``rng`` the global legacy NumPy generator inside the block; restore afterwards."""
    saved = np.random.get_state()
    np.random.set_state(rng.get_state())
    try:
        yield
    finally:
        rng.set_state(np.random.get_state())
        np.random.set_state(saved)


class RobosuiteEnv(gym.Env):
    """A robosuite task behind the project's observation/action contract.

    Observation dict:
      * ``observation.state`` float32: for each arm ``[eef_pos(3), eef_rotation_6d(6)]``, then each
        arm's gripper joint positions, then the arm joint positions. Panda: 3+6+2+7 = 18;
        GR1 (right, left): 2*(3+6) + 2*11 + 14 = 54.
      * ``observation.environment_state`` float32: robosuite's object observables, each quaternion
        as a 6-D rotation (Lift/Panda: cube pos, cube rotation, gripper-to-cube = 12; Lift/GR1: 15
        (one gripper-to-cube per arm); Can/Panda: can-to-eef pos and rotation, can pos and
        rotation = 18). Both come from robo_reward.envs.observations, as on the robot path.
      * ``observation.images.<cam>`` uint8 (H, W, 3), row 0 = top, for each requested camera.

    Action: float32 (A,) in [-1, 1], mapped linearly onto robosuite's action bounds (non-finite
    bounds are treated as the controllers' [-1, 1] input range). Panda: A = 7 (OSC_POSE deltas
    + gripper); GR1: A = 24 (right arm OSC 6, left arm OSC 6, right hand 6, left hand 6).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": CONTROL_FREQ}

    def __init__(
        self,
        task: str = "lift",
        robot: str = "Panda",
        cameras: Sequence[str] = (),
        image_size: tuple[int, int] = (84, 84),
        horizon: int | None = None,
        terminate_on_success: bool = True,
        render_camera: str | None = None,
        render_size: tuple[int, int] = (256, 256),
        seed: int | None = None,
        placement_scale: float = 1.0,
        render: RenderSettings | None = None,
    ):
        import robosuite

        # robosuite logs an INFO line per env construction; keep its warnings and errors only
        logging.getLogger("robosuite_logs").setLevel(logging.WARNING)
        from robosuite.controllers import load_composite_controller_config

        self.task = resolve_task(task)
        self.robot_name = resolve_robot(robot, self.task)
        self._task_spec = TASKS[self.task]
        self._robot_spec = ROBOTS[self.robot_name]
        self.robot_family = self._robot_spec.family
        default_h, self.task_text = task_episode(self.task, self.robot_name)
        self.fps = CONTROL_FREQ
        if horizon is not None and int(horizon) <= 0:
            raise ValueError(f"horizon must be a positive number of control steps, got {horizon!r}")
        self.max_episode_steps = int(horizon) if horizon is not None else default_h
        self.terminate_on_success = bool(terminate_on_success)
        if isinstance(cameras, str):
            cameras = (cameras,)
        self.cameras = tuple(cameras)
        self.image_size = (int(image_size[0]), int(image_size[1]))  # (height, width)
        self.render_camera = render_camera
        self.render_size = (int(render_size[0]), int(render_size[1]))  # (height, width)
        self.render_mode = "rgb_array" if render_camera is not None else None
        self.render_settings = DEFAULT_RENDER if render is None else render
        self.scene = task_scene(self.task, self.robot_name)  # what a spec recorded here says (make_env)

        # The model itself (e.g. the Lift cube's size, drawn when robosuite builds the model) is
        # always built from seed 0, so that reset(seed=s) gives the same initial state in every
        # instance of a task/robot; ``seed`` seeds the stream of unseeded resets.
        build_rng = np.random.RandomState(0)
        controller_config = load_composite_controller_config(
            controller=self._robot_spec.controller, robot=self._robot_spec.robosuite_name
        )
        need_renderer = bool(self.cameras) or render_camera is not None
        _register_custom_envs()
        env_name = self._task_spec.robot_env_name.get(self.robot_name, self._task_spec.env_name)
        self.robosuite_env_name = env_name
        with _global_np_random(build_rng):
            self._env = robosuite.make(
                env_name,
                robots=self._robot_spec.robosuite_name,
                controller_configs=controller_config,
                has_renderer=False,
                has_offscreen_renderer=False,  # frames are drawn by this wrapper (sim/rendering.py)
                use_camera_obs=False,
                use_object_obs=True,
                reward_shaping=False,
                control_freq=CONTROL_FREQ,
                horizon=self.max_episode_steps,
                ignore_done=True,  # time limit handled here
                hard_reset=False,  # reuse the compiled model across resets (fast)
                renderer="mujoco",
                **{**self._task_spec.env_kwargs, **self._task_spec.robot_env_kwargs.get(self.robot_name, {})},
            )
        if not (np.isfinite(placement_scale) and placement_scale > 0):
            self._env.close()
            raise ValueError(f"placement_scale must be a positive number, got {placement_scale!r}")
        if placement_scale != 1.0:
            if self.task != "lift":  # PickPlace samples over a whole bin: wider would be past its walls
                self._env.close()
                raise ValueError(f"placement_scale is for the lift task (a cube on an open table), not {self.task!r}")
            _scale_placement(self._env.placement_initializer, float(placement_scale))
        self.placement_scale = float(placement_scale)
        valid_cams = [c for c in self._env.sim.model.camera_names if c]
        bad = [c for c in list(self.cameras) + ([render_camera] if render_camera else []) if c not in valid_cams]
        if bad:
            self._env.close()
            raise ValueError(f"unknown camera(s) {_choices(bad)}; valid cameras: {_choices(valid_cams)}")
        self.valid_cameras = tuple(valid_cams)
        self._scene = None
        if need_renderer:
            rs = self._env
            self._scene = SceneRenderer(rs.edit_model_xml(rs.model.get_xml()), rs.sim.model._model,
                                        self.render_settings)
        # robosuite samples an observable at the first physics substep of each sampling period, counted
        # from its last forced update: the observation a step returns lagged the state it ended in by
        # up to a control period, by an amount that changed whenever the state was read in between
        # (a robot driver reads it for every message). Here observables never sample on their own;
        # step() reads them once, at the end of the step.
        for name in self._env._observables:
            self._env.modify_observable(name, "sampling_rate", 1e-9)

        # Action mapping [-1, 1] -> robosuite bounds.
        low, high = (np.asarray(b, dtype=np.float64) for b in self._env.action_spec)
        low = np.where(np.isfinite(low), low, -1.0)
        high = np.where(np.isfinite(high), high, 1.0)
        self._act_center = (high + low) / 2.0
        self._act_scale = (high - low) / 2.0
        self.action_dim = int(low.shape[0])
        self.action_space = spaces.Box(-1.0, 1.0, (self.action_dim,), dtype=np.float32)

        robot0 = self._env.robots[0]
        self.arms = tuple(robot0.arms)
        self.action_split = {k: tuple(v) for k, v in robot0.composite_controller._action_split_indexes.items()}
        pfx = "robot0_"
        arm_pfx = [f"{pfx}{arm}_" if len(self.arms) > 1 else pfx for arm in self.arms]
        self._ee_keys = [(f"{a}eef_pos", f"{a}eef_quat_site") for a in arm_pfx]
        self._gripper_keys = [f"{a}gripper_qpos" for a in arm_pfx]
        self._object_keys = [n for n, o in self._env._observables.items()
                             if o.modality == "object" and o.is_enabled() and o.is_active()]

        raw = self._env._get_observations(force_update=True)
        needed = [k for pair in self._ee_keys for k in pair] + self._gripper_keys + [f"{pfx}joint_pos"]
        missing = [k for k in needed + self._object_keys if k not in raw]
        if missing:  # pragma: no cover - guards against robosuite API changes
            raise RuntimeError(f"robosuite observation lacks keys {missing}; has {sorted(raw)}")
        # sizes only: object readings are zero (no rotation) until the first reset
        self.state_dim = EE_POSE_DIM * len(self.arms) + sum(raw[k].size for k in self._gripper_keys) \
            + raw[f"{pfx}joint_pos"].size
        self.env_state_dim = sum(ROTATION_DIM if k.endswith("quat") else raw[k].size for k in self._object_keys)
        obs_spaces: dict[str, spaces.Space] = {
            "observation.state": spaces.Box(-np.inf, np.inf, (self.state_dim,), np.float32),
            "observation.environment_state": spaces.Box(-np.inf, np.inf, (self.env_state_dim,), np.float32),
        }
        h, w = self.image_size
        for cam in self.cameras:
            obs_spaces[f"observation.images.{cam}"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        self.observation_space = spaces.Dict(obs_spaces)

        # Orientation (3x3, columns = axes in the world frame) of the frame in which each arm's
        # OSC_POSE deltas are expressed (robosuite's controller "origin": the robot base for Panda,
        # the shoulder mount for GR1, tilted ~25 deg about x). Constant for fixed-base robots.
        self.arm_action_frames: dict[str, np.ndarray] = {}
        for arm in self.arms:
            ctrl = robot0.composite_controller.part_controllers.get(arm)
            ori = getattr(ctrl, "origin_ori", None)
            self.arm_action_frames[arm] = np.array(ori if ori is not None else np.eye(3), dtype=np.float64)

        # Task constants usable by scripted controllers (never change across resets).
        self.task_constants: dict[str, np.ndarray | float] = {}
        if self.task == "lift":
            self.task_constants["table_height"] = float(self._env.model.mujoco_arena.table_offset[2])
        elif self.task == "can":
            vis = self._env.visual_objects[self._env.object_id].name
            self.task_constants["target_pos"] = np.array(
                self._env.sim.model.body_pos[self._env.obj_body_id[vis]], dtype=np.float64
            )
            self.task_constants["bin_size"] = np.array(self._env.bin_size, dtype=np.float64)
        self._rng = np.random.RandomState(seed)
        self._steps = 0
        self._needs_reset = True
        self._closed = False

    # ------------------------------------------------------------------ helpers
    @property
    def unwrapped_robosuite(self):
        """The underlying robosuite environment (for advanced use; do not reset it directly)."""
        return self._env

    def _frames(self, cameras: Sequence[str], size: tuple[int, int]) -> dict[str, np.ndarray]:
        return self._scene.frames(self._env.sim.data._data, cameras, size)

    def _convert_obs(self, raw: dict) -> dict[str, np.ndarray]:
        """docs/conventions.md's observation, through the processing step the robot path uses too."""
        obs = {
            "observation.state": proprio_vector([(raw[p], raw[q]) for p, q in self._ee_keys],
                                                np.concatenate([raw[k] for k in self._gripper_keys]),
                                                raw["robot0_joint_pos"]),
            "observation.environment_state": object_vector([(k, raw[k]) for k in self._object_keys]),
        }
        if self.cameras:
            obs.update({f"{IMAGE_PREFIX}{cam}": frame for cam, frame in self._frames(self.cameras, self.image_size).items()})
        return obs

    # ------------------------------------------------------------------ driver view (ROS sim robot)
    def joint_names(self) -> list[str]:
        """Arm joints, then gripper/hand joints: the names a real driver reports in /joint_states."""
        robot = self._env.robots[0]
        return list(robot.robot_joints) + [j for arm in self.arms for j in robot.gripper_joints[arm]]

    def robot_readings(self) -> dict[str, Any]:
        """What a real arm's driver reports: joint positions and velocities (named), each end
        effector's pose (world frame, quaternion xyzw) and the wrench at the first wrist sensor."""
        robot = self._env.robots[0]
        raw = self._env._get_observations(force_update=True)
        poses = [(np.asarray(raw[p], float), np.asarray(raw[q], float)) for p, q in self._ee_keys]
        return {
            **self.joint_state(self.joint_names()),
            "ee_poses": poses,
            "force": np.asarray(robot.ee_force[self.arms[0]], float),
            "torque": np.asarray(robot.ee_torque[self.arms[0]], float),
        }

    def joint_state(self, names: list[str] | None = None) -> dict[str, Any]:
        """Named joint positions and velocities (default: the arm joints), as a driver reports them."""
        sim = self._env.sim
        names = list(self._env.robots[0].robot_joints) if names is None else names
        return {"names": names,
                "positions": np.array([sim.data.qpos[sim.model.get_joint_qpos_addr(n)] for n in names], float),
                "velocities": np.array([sim.data.qvel[sim.model.get_joint_qvel_addr(n)] for n in names], float)}

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation (rendering the cameras), without stepping."""
        return self._convert_obs(self._env._get_observations(force_update=True))

    def hold_action(self, last_action: np.ndarray | None = None) -> np.ndarray:
        """An action that keeps the arms where they are: zero OSC deltas, grippers as last commanded."""
        hold = np.zeros(self.action_dim, np.float32)
        if last_action is not None:
            for part, (start, end) in self.action_split.items():
                if "gripper" in part or "hand" in part:
                    hold[start:end] = last_action[start:end]
        return hold

    def hold_position(self) -> None:
        """Controller goals := the pose the arms have now (robosuite's delta OSC otherwise keeps
        pushing toward the last commanded goal, e.g. into the table, when the deltas stop)."""
        controller = self._env.robots[0].composite_controller
        controller.update_state()
        controller.reset()

    def move_arm_joints(self, positions: np.ndarray) -> None:
        """Put the arm joints at `positions` (at rest) — how the sim robot follows a joint-position
        reset command; the controllers' goals restart from the new pose."""
        robot, sim = self._env.robots[0], self._env.sim
        q = np.asarray(positions, float)
        if q.shape != (len(robot.robot_joints),) or not np.all(np.isfinite(q)):
            raise ValueError(f"joint positions must be {len(robot.robot_joints)} finite numbers, got {q.tolist()}")
        sim.data.qpos[robot._ref_joint_pos_indexes] = q
        sim.data.qvel[robot._ref_joint_vel_indexes] = 0.0
        sim.forward()
        self.hold_position()
        self._env._get_observations(force_update=True)

    def check_success(self) -> bool:
        return bool(self._env._check_success())

    def to_robosuite_action(self, action) -> np.ndarray:
        """Validate, clip to [-1, 1] and map to robosuite's action bounds."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != (self.action_dim,):
            a = a.reshape(-1)
            if a.shape != (self.action_dim,):
                raise ValueError(f"action must have shape ({self.action_dim},), got {np.shape(action)}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"action contains non-finite values (NaN/inf) at indices {np.flatnonzero(~np.isfinite(a)).tolist()}: {a}")
        a = np.clip(a, -1.0, 1.0)
        return self._act_center + self._act_scale * a

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if self._closed:
            raise RuntimeError("environment is closed")
        if seed is not None:
            self._rng = np.random.RandomState(seed)
        with _global_np_random(self._rng):
            self._env.reset()
        controllers = self._env.robots[0].composite_controller.part_controllers
        for part, posture in self._robot_spec.nullspace_posture:  # robosuite rebuilds its controllers on reset
            controllers[part].update_initial_joints(np.asarray(posture, float))
        if options and options.get("arm_joints") is not None:  # a robot's reset: home pose after the scene
            self.move_arm_joints(options["arm_joints"])
        # A second forced update: some robosuite sensors (e.g. PickPlace's object-to-eef pose) read
        # other sensors' values from the observation cache, which reset() has just emptied, and
        # would otherwise report zeros in the first observation of an episode.
        raw = self._env._get_observations(force_update=True)
        self._steps = 0
        self._needs_reset = False
        obs = self._convert_obs(raw)
        success = self.check_success()
        return obs, {"success": success, "is_success": success, JOINT_STATE_KEY: self.joint_state()}

    def step(self, action):
        if self._needs_reset:
            raise RuntimeError("call reset() before step()")
        rs_action = self.to_robosuite_action(action)
        self._env.step(rs_action)
        raw = self._env._get_observations(force_update=True)  # the state the step ended in
        self._steps += 1
        success = self.check_success()
        reward = 1.0 if success else 0.0
        terminated = bool(success and self.terminate_on_success)
        truncated = bool(self._steps >= self.max_episode_steps and not terminated)
        info = {"success": success, "is_success": success, "steps": self._steps, JOINT_STATE_KEY: self.joint_state()}
        return self._convert_obs(raw), reward, terminated, truncated, info

    def render(self):
        if self.render_camera is None:
            raise RuntimeError(
                "render() needs render_camera; create the env with e.g. "
                f"make_env(..., render_camera='frontview') (valid cameras: {_choices(self.valid_cameras)})"
            )
        return self._frames([self.render_camera], self.render_size)[self.render_camera]

    def close(self):
        if not self._closed:
            self._closed = True
            if self._scene is not None:
                self._scene.close()
            self._env.close()

    def __repr__(self) -> str:
        return (
            f"RobosuiteEnv(task={self.task!r}, robot={self.robot_name!r}, cameras={self.cameras}, "
            f"max_episode_steps={self.max_episode_steps})"
        )


def task_scene(task: str, robot: str) -> dict[str, Any]:
    """What a task's scene changes from robosuite's for `robot` (its keyword arguments to robosuite), as
    an env spec records it (robo_reward/envs/scenes.py): `{}` where robosuite's own scene is used."""
    task = resolve_task(task)
    spec = TASKS[task]
    kwargs = {**spec.env_kwargs, **spec.robot_env_kwargs.get(resolve_robot(robot, task), {})}
    return json.loads(json.dumps(kwargs))  # tuples as lists, as a spec file holds them


def make_env(
    task: str = "lift",
    robot: str = "Panda",
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (84, 84),
    horizon: int | None = None,
    terminate_on_success: bool = True,
    render_camera: str | None = None,
    render_size: tuple[int, int] = (256, 256),
    seed: int | None = None,
    observation_format: int = OBSERVATION_FORMAT,
    placement_scale: float = 1.0,
    render: RenderSettings | Mapping[str, Any] | None = None,
    scene: Mapping[str, Any] | None = None,
) -> RobosuiteEnv:
    """Build a :class:`RobosuiteEnv`.

    Args:
        task: one of ``TASKS`` ("lift", "can").
        robot: "Panda" (lift, can) or "GR1" (lift; alias "GR1ArmsOnly").
        cameras: camera names to add as ``observation.images.<cam>`` (e.g. "agentview",
            "robot0_eye_in_hand"). Cameras make stepping ~10x slower.
        image_size: (height, width) of camera observations.
        horizon: episode length in control steps (default per task, see ``TASKS``).
        terminate_on_success: end the episode (terminated=True) on the first success.
        render_camera: camera used by ``render()``; None disables rendering.
        render_size: (height, width) of ``render()`` frames.
        seed: seeds the environment's random stream (see module docstring).
        observation_format: what an env spec records; only this version's format is produced.
        placement_scale: object placement ranges at reset, as a multiple of the task's own.
        render: how camera frames are drawn (robo_reward.envs.rendering; default: the `fast` preset).
        scene: the scene an env spec records (`task_scene`); one other than this version's is refused.
    """
    if observation_format != OBSERVATION_FORMAT:
        raise ValueError(f"this simulator produces observation format {OBSERVATION_FORMAT}, not {observation_format!r}")
    if scene is not None and dict(scene) != (built := task_scene(task, robot)):
        raise ValueError(f"the env spec was made in the {task}/{robot} scene {dict(scene)} ({{}}: robosuite's own), "
                         f"but this simulator builds {built}: a dataset or policy made in another scene does not "
                         "describe this one; record the demonstrations again (docs/conventions.md, 'Scenes')")
    return RobosuiteEnv(
        task=task,
        robot=robot,
        cameras=cameras,
        image_size=image_size,
        horizon=horizon,
        terminate_on_success=terminate_on_success,
        render_camera=render_camera,
        render_size=render_size,
        seed=seed,
        placement_scale=placement_scale,
        render=render if render is None or isinstance(render, RenderSettings) else RenderSettings.from_dict(render),
    )
