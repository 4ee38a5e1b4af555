"""Scripted waypoint demonstrators for the sim tasks.

Each demonstrator is a small state machine over waypoints computed from the observation dict
only (plus task constants read from the env once, e.g. the Can's target bin position), so it
can also serve as a "scripted base policy" for any environment that produces the same
observations. Interface::

    demo = make_demonstrator(env, noise=0.0, seed=0)
    demo.reset()                      # at the start of every episode
    action = demo.act(obs)            # float32 (A,), in [-1, 1]

Noise model (``noise`` >= 0, typically 0..1):
  * per episode, waypoints are perturbed: the grasp point by N(0, (GRASP_XY_STD*noise)^2) in x/y
    and N(0, (GRASP_Z_STD*noise)^2) in z, the grasp yaw by N(0, (GRASP_YAW_STD*noise)^2) and,
    for Can, the release point by N(0, (PLACE_XY_STD*noise)^2);
  * every step, Gaussian noise N(0, (ACTION_STD*noise)^2) is added to every action dimension
    (then clipped to [-1, 1]).
``noise=0`` is deterministic. Success degrades smoothly as noise grows; measured over seeded
episodes (bench/bench_demonstrators.py, results in bench/results/demonstrators.json):
Panda Lift ~100% at 0 and 0.5, ~70% at 1.0, ~15-30% at 1.5; Panda Can ~100% at 0, ~90% at
0.5, ~40-45% at 1.0. GR1 Lift (cube in front of the right hand) is ~90-100% from noise 0 to 1.5.

After a missed or dropped grasp (object away from the hand, or fingers closed on nothing) the
demonstrators go back to the approach phase, at most ``max_retries`` times per episode, so they
also work as a scripted base policy under perturbations.

Observation layouts used here (see sim/robosuite_env.py; rotations are 6-D, two matrix columns):
  Panda state: eef_pos[0:3], eef_rot[3:9], gripper_qpos[9:11], joints[11:18]
  GR1 state:   right eef_pos[0:3], right eef_rot[3:9], left eef_pos[9:12], left eef_rot[12:18],
               right hand qpos[18:29], left hand qpos[29:40], joints[40:54]
  Lift env state: cube_pos[0:3], cube_rot[3:9], ...
  Can env state:  can_to_eef pos/rot[0:9], can_pos[9:12], can_rot[12:18]
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robo_reward.envs.observations import EE_POSE_DIM, rotation_from_6d

__all__ = [
    "DEMONSTRATORS",
    "GR1LiftDemonstrator",
    "PandaCanDemonstrator",
    "PandaLiftDemonstrator",
    "ScriptedDemonstrator",
    "make_demonstrator",
]

# Noise scales (per unit of ``noise``).
ACTION_STD = 0.3  # std of per-step Gaussian action noise, in normalized action units
GRASP_XY_STD = 0.012  # m
GRASP_Z_STD = 0.008  # m
GRASP_YAW_STD = 0.35  # rad
PLACE_XY_STD = 0.04  # m

OSC_POS_MAX = 0.05  # m per control step for action = 1 (robosuite OSC_POSE default)
OSC_ROT_MAX = 0.5  # rad per control step for action = 1


# ----------------------------------------------------------------------------- rotation helpers
def pose_at(vector: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """Position and rotation matrix of the pose (position 3, 6-D rotation) at `vector[start:]`."""
    v = np.asarray(vector, dtype=np.float64)
    return v[start:start + 3], rotation_from_6d(v[start + 3:start + EE_POSE_DIM])


def rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotvec_from_mat(r: np.ndarray) -> np.ndarray:
    """Axis-angle vector (axis * angle) of rotation matrix ``r``."""
    cos = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = np.arccos(cos)
    if angle < 1e-6:
        return np.zeros(3)
    if np.pi - angle < 1e-4:  # ~180 deg: axis from the symmetric part
        m = (r + np.eye(3)) / 2.0
        axis = np.sqrt(np.clip(np.diag(m), 0.0, None))
        i = int(np.argmax(axis))
        axis = m[:, i] / max(np.sqrt(m[i, i]), 1e-12)
        return axis / np.linalg.norm(axis) * angle
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2.0 * np.sin(angle))
    return axis * angle


def wrap_angle(a: float) -> float:
    return float((a + np.pi) % (2.0 * np.pi) - np.pi)


def yaw_of(r: np.ndarray) -> float:
    """Heading of the rotation's x axis in the world x-y plane."""
    return float(np.arctan2(r[1, 0], r[0, 0]))


# ----------------------------------------------------------------------------- base class
class ScriptedDemonstrator:
    """Common machinery: phases, noise, P-control toward pose targets."""

    pos_gain = 1.0  # fraction of the remaining error commanded per step (before the 5 cm/step cap)
    rot_gain = 1.0

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.action_dim = int(env.action_space.shape[0])
        self.task = env.task
        self.robot_name = env.robot_name
        self.task_constants = dict(getattr(env, "task_constants", {}))
        # World -> controller-frame rotations per arm (identity if the env does not say).
        frames = getattr(env, "arm_action_frames", {}) or {}
        self.arm_frames = {k: np.asarray(v, dtype=np.float64) for k, v in frames.items()}
        self.phase = "start"
        self.t = 0
        self.t_phase = 0

    # -- episode control
    max_retries = 2  # re-grasp attempts after a missed or dropped grasp

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.phase = "start"
        self.t = 0
        self.t_phase = 0
        self.retries = 0
        self._sample_episode_perturbation()

    def _sample_episode_perturbation(self) -> None:
        n = self.noise
        self.grasp_offset = np.array(
            [
                self.rng.normal(0.0, GRASP_XY_STD * n) if n else 0.0,
                self.rng.normal(0.0, GRASP_XY_STD * n) if n else 0.0,
                self.rng.normal(0.0, GRASP_Z_STD * n) if n else 0.0,
            ]
        )
        self.yaw_offset = float(self.rng.normal(0.0, GRASP_YAW_STD * n)) if n else 0.0
        self.place_offset = np.array(
            [
                self.rng.normal(0.0, PLACE_XY_STD * n) if n else 0.0,
                self.rng.normal(0.0, PLACE_XY_STD * n) if n else 0.0,
                0.0,
            ]
        )

    def _goto(self, phase: str) -> None:
        self.phase = phase
        self.t_phase = 0
        self._err_hist: list[float] = []

    def _stalled(self, err: float, window: int = 6, min_progress: float = 0.002) -> bool:
        """True once ``err`` (a distance) has improved by less than ``min_progress`` over ``window`` steps."""
        hist = self.__dict__.setdefault("_err_hist", [])
        hist.append(float(err))
        return len(hist) > window and hist[-window - 1] - hist[-1] < min_progress

    def _add_noise(self, action: np.ndarray) -> np.ndarray:
        if self.noise > 0:
            action = action + self.rng.normal(0.0, ACTION_STD * self.noise, size=action.shape)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _pos_action(
        self, target: np.ndarray, pos: np.ndarray, gain: float, max_speed: float = 1.0, arm: str = "right"
    ) -> np.ndarray:
        """OSC translation action moving ``pos`` toward ``target`` (world frame)."""
        d = gain * (np.asarray(target) - np.asarray(pos))
        if arm in self.arm_frames:
            d = self.arm_frames[arm].T @ d
        a = d / OSC_POS_MAX
        n = np.max(np.abs(a))
        if n > max_speed:
            a = a * (max_speed / n)
        return a

    def _rot_action(self, r_target: np.ndarray, r_cur: np.ndarray, gain: float, arm: str = "right") -> np.ndarray:
        """OSC rotation action turning ``r_cur`` toward ``r_target`` (world-frame matrices)."""
        err = rotvec_from_mat(r_target @ r_cur.T)
        if arm in self.arm_frames:
            err = self.arm_frames[arm].T @ err
        return np.clip(gain * err / OSC_ROT_MAX, -1.0, 1.0)

    def act(self, obs: dict) -> np.ndarray:
        action = self._act(obs)
        self.t += 1
        self.t_phase += 1
        return self._add_noise(np.asarray(action, dtype=np.float64))

    def _act(self, obs: dict) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # Allow use as a plain callable policy.
    def __call__(self, obs: dict) -> np.ndarray:
        return self.act(obs)


# Gripper pointing straight down, fingers' x axis along world x.
R_DOWN = np.diag([1.0, -1.0, -1.0])


class _PandaPickBase(ScriptedDemonstrator):
    """Shared top-down grasp for a single Panda arm (OSC_POSE, 7-d action)."""

    hover_height = 0.08  # above the grasp point before descending
    close_steps = 10  # gripper needs ~0.3-0.5 s to close
    approach_tol = 0.012
    descend_tol = 0.008
    approach_timeout = 50
    descend_timeout = 30

    @staticmethod
    def _eef(obs):
        return pose_at(obs["observation.state"], 0)

    def _desired_rot(self, r_cur: np.ndarray, obj_yaw: float | None) -> np.ndarray:
        """Top-down orientation; yaw aligned to the object's yaw modulo 90 deg if given (the
        face closest to the gripper's yaw at the start of the episode)."""
        if obj_yaw is None:
            yaw = self._yaw_ref
        else:
            cands = [obj_yaw + k * np.pi / 2 for k in range(-4, 5)]
            yaw = min(cands, key=lambda c: abs(wrap_angle(c - self._yaw_ref)))
        return rot_z(yaw + self.yaw_offset) @ R_DOWN

    drop_dist = 0.05  # eef-object distance above which a held object counts as lost

    def _lost_grasp(self, obs, pos: np.ndarray, obj: np.ndarray) -> bool:
        """Object not in the hand: too far from the eef, or the fingers closed on nothing."""
        s = np.asarray(obs["observation.state"], dtype=np.float64)
        finger_gap = s[EE_POSE_DIM] - s[EE_POSE_DIM + 1]
        return bool(np.linalg.norm(obj - pos) > self.drop_dist or finger_gap < 0.01)

    def _maybe_retry(self, obs, pos, obj) -> bool:
        if self.t_phase >= 3 and self.retries < self.max_retries and self._lost_grasp(obs, pos, obj):
            self.retries += 1
            self._goto("approach")
            return True
        return False

    def _arm_action(self, target, pos, r_des, r_cur, grip: float, speed: float = 1.0) -> np.ndarray:
        a = np.zeros(7)
        a[0:3] = self._pos_action(target, pos, self.pos_gain, speed)
        a[3:6] = self._rot_action(r_des, r_cur, self.rot_gain)
        a[6] = grip
        return a


class PandaLiftDemonstrator(_PandaPickBase):
    """Approach above the cube, descend, close the gripper, lift."""

    lift_height = 0.15

    def _act(self, obs):
        pos, r_cur = self._eef(obs)
        e = np.asarray(obs["observation.environment_state"], dtype=np.float64)
        cube, cube_rot = pose_at(e, 0)
        cube_yaw = yaw_of(cube_rot)
        if self.phase == "start":
            self._yaw_ref = yaw_of(r_cur)
            self._goto("approach")
        grasp = cube + self.grasp_offset
        if self.phase in ("approach", "descend"):
            self._r_des = self._desired_rot(r_cur, cube_yaw)
        r_des = self._r_des

        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, self.hover_height])
            err = target - pos
            rot_err = np.linalg.norm(rotvec_from_mat(r_des @ r_cur.T))
            if (np.linalg.norm(err[:2]) < self.approach_tol and abs(err[2]) < 0.02 and rot_err < 0.1) or (
                self.t_phase >= self.approach_timeout
            ):
                self._goto("descend")
            return self._arm_action(target, pos, r_des, r_cur, -1.0)
        if self.phase == "descend":
            target = grasp
            if np.linalg.norm(target - pos) < self.descend_tol or self.t_phase >= self.descend_timeout:
                self._goto("grasp")
            return self._arm_action(target, pos, r_des, r_cur, -1.0, speed=0.6)
        if self.phase == "grasp":
            self._lift_target = grasp + np.array([0.0, 0.0, self.lift_height])
            if self.t_phase >= self.close_steps:
                self._goto("lift")
            return self._arm_action(grasp, pos, r_des, r_cur, 1.0)
        # lift (and hold); start over if the cube is not in the hand
        if self._maybe_retry(obs, pos, cube):
            return self._arm_action(pos + np.array([0.0, 0.0, 0.05]), pos, r_des, r_cur, -1.0)
        return self._arm_action(self._lift_target, pos, r_des, r_cur, 1.0, speed=0.6)


class PandaCanDemonstrator(_PandaPickBase):
    """Grasp the can from above, carry it over the target bin, release, move away."""

    carry_height = 1.02  # world z while transporting (clears the bin walls)
    release_height = 0.06  # eef height above the target bin centre when releasing
    release_steps = 8

    def __init__(self, env, noise: float = 0.0, seed: int | None = None):
        super().__init__(env, noise, seed)
        if "target_pos" not in self.task_constants:
            raise ValueError("PandaCanDemonstrator needs env.task_constants['target_pos']")
        self.target_pos = np.asarray(self.task_constants["target_pos"], dtype=np.float64)

    def _act(self, obs):
        pos, r_cur = self._eef(obs)
        e = np.asarray(obs["observation.environment_state"], dtype=np.float64)
        can = e[EE_POSE_DIM:EE_POSE_DIM + 3]
        if self.phase == "start":
            self._yaw_ref = yaw_of(r_cur)
            self._r_des = self._desired_rot(r_cur, None)
            self._goto("approach")
        r_des = self._r_des
        grasp = can + self.grasp_offset

        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, self.hover_height])
            err = target - pos
            if (np.linalg.norm(err[:2]) < self.approach_tol and abs(err[2]) < 0.02) or (
                self.t_phase >= self.approach_timeout
            ):
                self._goto("descend")
            return self._arm_action(target, pos, r_des, r_cur, -1.0)
        if self.phase == "descend":
            target = grasp
            d = float(np.linalg.norm(target - pos))
            if d < self.descend_tol or self._stalled(d, 4) or self.t_phase >= self.descend_timeout:
                self._goto("grasp")
            return self._arm_action(target, pos, r_des, r_cur, -1.0, speed=0.6)
        if self.phase == "grasp":
            self._grasp_pos = grasp
            if self.t_phase >= self.close_steps:
                self._goto("lift")
            return self._arm_action(grasp, pos, r_des, r_cur, 1.0)
        place = self.target_pos + self.place_offset
        if self.phase in ("lift", "carry", "lower") and self._maybe_retry(obs, pos, can):
            return self._arm_action(pos + np.array([0.0, 0.0, 0.05]), pos, r_des, r_cur, -1.0)
        if self.phase == "lift":
            target = np.array([pos[0], pos[1], self.carry_height])
            target[:2] = self._grasp_pos[:2]
            if pos[2] > self.carry_height - 0.03 or self.t_phase >= 40:
                self._goto("carry")
            return self._arm_action(target, pos, r_des, r_cur, 1.0)
        if self.phase == "carry":
            target = np.array([place[0], place[1], self.carry_height])
            d = float(np.linalg.norm((target - pos)[:2]))
            if d < 0.015 or self._stalled(d) or self.t_phase >= 80:
                self._goto("lower")
            return self._arm_action(target, pos, r_des, r_cur, 1.0)
        if self.phase == "lower":
            target = np.array([place[0], place[1], self.target_pos[2] + self.release_height])
            if abs(target[2] - pos[2]) < 0.015 or self.t_phase >= 40:
                self._goto("release")
            return self._arm_action(target, pos, r_des, r_cur, 1.0, speed=0.6)
        if self.phase == "release":
            target = np.array([place[0], place[1], self.target_pos[2] + self.release_height])
            if self.t_phase >= self.release_steps:
                self._goto("retreat")
            return self._arm_action(target, pos, r_des, r_cur, -1.0)
        # retreat straight up, gripper open
        target = np.array([place[0], place[1], self.carry_height + 0.05])
        return self._arm_action(target, pos, r_des, r_cur, -1.0)


# GR1 right hand, palm down: fingers point forward (+x world = -y site), palm normal (+z site)
# points down, thumb toward the body midline (+y world = -x site).
R_GR1_RIGHT_PALM_DOWN = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])


class GR1LiftDemonstrator(ScriptedDemonstrator):
    """Right-hand top grasp for the GR1 humanoid (arms-only, BASIC controller).

    The right hand turns palm-down over the cube (palm centre ~5 cm ahead of the eef site),
    descends, closes all fingers and lifts; the left arm holds its initial pose. Action layout
    (24): right arm OSC [0:6], left arm OSC [6:12], right hand [12:18], left hand [18:24]
    (-1 open, +1 closed).
    """

    grasp_dx = -0.095  # eef-site offset from the cube centre along the (yaw-aligned) finger axis
    grasp_dy = 0.0  # ... sideways
    grasp_dz = 0.02  # ... and up
    hover = 0.08
    close_steps = 15
    finger_close = 1.0
    lift_height = 0.10
    align_yaw = True
    yaw_min = np.radians(-15.0)
    yaw_max = np.radians(40.0)

    def _act(self, obs):
        e = np.asarray(obs["observation.environment_state"], dtype=np.float64)
        pr, rr = pose_at(obs["observation.state"], 0)
        pl, rl = pose_at(obs["observation.state"], EE_POSE_DIM)
        if self.phase == "start":
            self._left_hold = (pl.copy(), rl.copy())
            self._goto("approach")
        cube = e[0:3]
        if self.phase in ("approach", "descend"):
            # Align the hand with the nearest cube face (cube yaw modulo 90 deg, closest to 0).
            # The wrist only turns comfortably within [yaw_min, yaw_max]: pick the cube face needing
            # the least turn beyond that window, and clip (accepting a small misalignment).
            cy = yaw_of(pose_at(e, 0)[1]) if self.align_yaw else 0.0
            cands = [cy + k * np.pi / 2 for k in range(-4, 5)]
            clipped = [float(np.clip(c, self.yaw_min, self.yaw_max)) for c in cands]
            cy = min(clipped, key=lambda c: min(abs(wrap_angle(c - x)) for x in cands))
            self._yaw = cy + self.yaw_offset
        rz = rot_z(self._yaw)
        grasp = cube + rz @ np.array([self.grasp_dx, self.grasp_dy, self.grasp_dz]) + self.grasp_offset
        r_des = rz @ R_GR1_RIGHT_PALM_DOWN
        fingers = -1.0
        speed = 0.6
        if self.phase == "approach":
            target = grasp + np.array([0.0, 0.0, self.hover])
            err = float(np.linalg.norm(target - pr))
            if err < 0.015 or self._stalled(err) or self.t_phase >= 60:
                self._goto("descend")
        elif self.phase == "descend":
            target = grasp
            err = float(np.linalg.norm(target - pr))
            speed = 0.4
            if err < 0.01 or self._stalled(err, 4) or self.t_phase >= 30:
                self._grasp_pos = grasp
                self._cube_z0 = float(cube[2])
                self._goto("close")
        elif self.phase == "close":
            target = self._grasp_pos
            fingers = self.finger_close
            if self.t_phase >= self.close_steps:
                self._goto("lift")
        else:  # lift and hold; start over if the cube stays on the table
            target = self._grasp_pos + np.array([0.0, 0.0, self.lift_height])
            fingers = self.finger_close
            speed = 0.4
            if self.t_phase >= 12 and cube[2] < self._cube_z0 + 0.01 and self.retries < self.max_retries:
                self.retries += 1
                self._goto("approach")
                fingers = -1.0
        a = np.zeros(24)
        a[0:3] = self._pos_action(target, pr, self.pos_gain, speed, arm="right")
        a[3:6] = self._rot_action(r_des, rr, self.rot_gain, arm="right")
        a[6:9] = self._pos_action(self._left_hold[0], pl, self.pos_gain, speed, arm="left")
        a[9:12] = self._rot_action(self._left_hold[1], rl, self.rot_gain, arm="left")
        a[12:18] = fingers
        a[18:24] = -1.0
        return a


DemonstratorFactory = Callable[..., ScriptedDemonstrator]

# Keyed by (task, robot family); see sim.robosuite_env.ROBOTS for families.
DEMONSTRATORS: dict[tuple[str, str], DemonstratorFactory] = {
    ("lift", "arm"): PandaLiftDemonstrator,
    ("can", "arm"): PandaCanDemonstrator,
    ("lift", "humanoid"): GR1LiftDemonstrator,
}


def make_demonstrator(env, noise: float = 0.0, seed: int | None = None) -> ScriptedDemonstrator:
    """Scripted demonstrator for ``env`` (a RobosuiteEnv, or anything with ``task``,
    ``robot_family`` (or ``robot_name``), ``action_space`` and ``task_constants``)."""
    family = getattr(env, "robot_family", None)
    if family is None:
        from sim.robosuite_env import ROBOTS, resolve_robot

        family = ROBOTS[resolve_robot(env.robot_name)].family
    key = (env.task, family)
    if key not in DEMONSTRATORS:
        raise ValueError(f"no scripted demonstrator for task={env.task!r}, robot family={family!r}; available: {sorted(DEMONSTRATORS)}")
    demo = DEMONSTRATORS[key](env, noise=noise, seed=seed)
    demo.reset()
    return demo
