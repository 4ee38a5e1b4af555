"""The safety monitor's logic (no ROS): limits from a hardware config, checked on every reading.

A violation latches: commands stay stopped until `reset()` succeeds, and `reset()` succeeds only
when every current reading is fresh and inside its limits. Inputs that cannot be trusted —
missing or NaN joints, a clock that jumps, data that stops arriving — are violations too: the
robot never moves on data the monitor could not check.

Times: `now` is the monitor's monotonic clock (seconds) when a reading arrived; `stamp` is the
reading's own timestamp (the sensor's clock). Staleness uses arrival times; clock jumps compare
the two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from robo_reward.config.hardware import HardwareConfig

# a stamp may run ahead of the arrival clock by this much (or twice the stale timeout, if longer)
# before it counts as a clock jump: a late delivery followed by a prompt one looks the same
CLOCK_JUMP_TOLERANCE_S = 1.0


@dataclass(frozen=True)
class Violation:
    kind: str  # joint_position | joint_velocity | workspace | command_delta | command | force | torque |
    #            stale | clock | bad_input | estop
    detail: str
    time: float

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class JointStateError(ValueError):
    """A joint state message cannot be mapped onto the configured joints."""


def joint_vector(config_names: Sequence[str], names: Sequence[str], values: Sequence[float],
                 what: str = "position") -> np.ndarray:
    """Values in the config's joint order from a JointState-like (names, values) pair. Extra joints
    (grippers, other limbs) are ignored; missing joints, mismatched lengths and NaN are errors."""
    if len(values) != len(names):
        raise JointStateError(f"{len(names)} joint names but {len(values)} {what} values")
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in config_names if n not in index]
    if missing:
        raise JointStateError(f"joint_states lacks configured joints {missing}")
    out = np.array([values[index[n]] for n in config_names], dtype=np.float64)
    bad = [n for n, v in zip(config_names, out) if not math.isfinite(v)]
    if bad:
        raise JointStateError(f"non-finite {what} for joints {bad}")
    return out


@dataclass
class _Reading:
    stamp: float = -math.inf
    arrived: float = -math.inf


@dataclass
class SafetyMonitor:
    config: HardwareConfig
    require_ee_pose: bool = True
    require_wrench: bool = True
    violation: Violation | None = None
    events: list[Violation] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.config
        self._lower, self._upper = cfg.joint_bounds()
        self._vmax = np.asarray(cfg.joints.velocity_limit)
        self._box_min, self._box_max = np.asarray(cfg.workspace.min), np.asarray(cfg.workspace.max)
        self._max_delta = np.broadcast_to(np.asarray(cfg.safety.max_command_delta, float), (cfg.command.action_dim,))
        self._ee_names = [f"ee_pose/{i}" for i in range(len(cfg.topics.ee_poses))]
        self._readings = {"joints": _Reading(), **{n: _Reading() for n in self._ee_names}, "wrench": _Reading()}
        self._last_command: np.ndarray | None = None
        self._estop = False
        self.joint_positions: np.ndarray | None = None
        self.joint_velocities: np.ndarray | None = None
        self.ee_positions: dict[str, np.ndarray] = {}
        self.wrench: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ state
    @property
    def ok(self) -> bool:
        return self.violation is None and not self.waiting_for()

    def waiting_for(self) -> list[str]:
        """Sources never heard from yet: not OK, but not a latched violation (start-up, not a fault)."""
        return [s for s in self._needed() if math.isinf(self._readings[s].arrived)]

    @property
    def status(self) -> str:
        if self.violation is not None:
            return str(self.violation)
        waiting = self.waiting_for()
        return f"waiting for first data from {waiting}" if waiting else "OK"

    def _trip(self, kind: str, detail: str, now: float) -> Violation | None:
        """Latch a violation; while one is latched, later ones are not news (None): the first cause
        is the one reported until reset."""
        if self.violation is not None:
            return None
        self.violation = Violation(kind, detail, now)
        self.events.append(self.violation)
        return self.violation

    def _arrived(self, source: str, stamp: float, now: float) -> Violation | None:
        r = self._readings[source]
        if r.arrived > -math.inf:
            if stamp < r.stamp:
                return self._trip("clock", f"{source} stamp went back {r.stamp - stamp:.3f} s", now)
            ahead = (stamp - r.stamp) - (now - r.arrived)
            if ahead > max(CLOCK_JUMP_TOLERANCE_S, 2 * self.config.safety.stale_timeout_s):
                return self._trip("clock", f"{source} stamp jumped {ahead:.3f} s ahead of the arrival clock", now)
        r.stamp, r.arrived = stamp, now
        return None

    # ------------------------------------------------------------------ readings
    def _limit_problem(self, source: str) -> tuple[str, str] | None:
        """What is wrong with the latest reading of `source` (None: inside its limits)."""
        names = self.config.joints.names
        if source == "joints" and self.joint_positions is not None:
            q = self.joint_positions
            out = np.flatnonzero((q < self._lower) | (q > self._upper))
            if len(out):
                j = out[0]
                return "joint_position", (f"{names[j]} at {q[j]:.4f} rad outside "
                                          f"[{self._lower[j]:.4f}, {self._upper[j]:.4f}]")
            if self.joint_velocities is not None:
                fast = np.flatnonzero(np.abs(self.joint_velocities) > self._vmax)
                if len(fast):
                    j = fast[0]
                    return "joint_velocity", (f"{names[j]} at {self.joint_velocities[j]:.3f} rad/s exceeds "
                                              f"{self._vmax[j]:.3f}")
        if source in self.ee_positions:
            p = self.ee_positions[source]
            out = np.flatnonzero((p < self._box_min) | (p > self._box_max))
            if len(out):
                return "workspace", (f"end effector at {np.round(p, 4).tolist()} outside the box "
                                     f"{self._box_min.tolist()} - {self._box_max.tolist()} (axis {'xyz'[out[0]]}, "
                                     f"{source})")
        if source == "wrench" and self.wrench is not None:
            f, t = (float(np.linalg.norm(x)) for x in self.wrench)
            if f > self.config.safety.max_force:
                return "force", f"|F| = {f:.1f} N exceeds {self.config.safety.max_force} N"
            if t > self.config.safety.max_torque:
                return "torque", f"|T| = {t:.2f} N m exceeds {self.config.safety.max_torque} N m"
        return None

    def _accept(self, source: str, stamp: float, now: float) -> Violation | None:
        """Bookkeeping after a reading was stored: clock check, then its limits."""
        if (v := self._arrived(source, stamp, now)) is not None:
            return v
        problem = self._limit_problem(source)
        return self._trip(*problem, now) if problem else None

    def update_joints(self, stamp: float, names: Sequence[str], positions: Sequence[float],
                      velocities: Sequence[float] | None, now: float) -> Violation | None:
        try:
            q = joint_vector(self.config.joints.names, names, positions)
            dq = joint_vector(self.config.joints.names, names, velocities, "velocity") if velocities else None
        except JointStateError as exc:
            return self._trip("bad_input", str(exc), now)
        self.joint_positions, self.joint_velocities = q, dq
        return self._accept("joints", stamp, now)

    def update_ee_position(self, stamp: float, position: Sequence[float], now: float,
                           index: int = 0) -> Violation | None:
        """End effector `index` (the order of the config's topics.ee_poses)."""
        p = np.asarray(position, float)
        if p.shape != (3,) or not np.all(np.isfinite(p)):
            return self._trip("bad_input", f"end-effector position {p.tolist()} is not 3 finite numbers", now)
        source = self._ee_names[index]
        self.ee_positions[source] = p
        return self._accept(source, stamp, now)

    def update_wrench(self, stamp: float, force: Sequence[float], torque: Sequence[float],
                      now: float) -> Violation | None:
        f, t = np.asarray(force, float), np.asarray(torque, float)
        if f.shape != (3,) or t.shape != (3,) or not (np.all(np.isfinite(f)) and np.all(np.isfinite(t))):
            return self._trip("bad_input", "wrench is not 3 + 3 finite numbers", now)
        self.wrench = (f, t)
        return self._accept("wrench", stamp, now)

    def set_estop(self, active: bool, now: float) -> Violation | None:
        self._estop = bool(active)
        return self._trip("estop", "emergency stop pressed", now) if active else None

    def check_command(self, command: Sequence[float], now: float) -> Violation | None:
        """A command the robot is about to receive (or just received): shape, finiteness, step change."""
        c = np.asarray(command, float).reshape(-1)
        if c.shape != self._max_delta.shape or not np.all(np.isfinite(c)):
            return self._trip("command", f"command {c.tolist()} is not {self._max_delta.size} finite numbers", now)
        previous, self._last_command = self._last_command, c
        if previous is not None:
            jump = np.abs(c - previous) - self._max_delta
            if jump.max() > 1e-9:
                i = int(np.argmax(jump))
                return self._trip("command_delta", f"element {i} changed by {abs(c[i] - previous[i]):.3f} "
                                  f"(limit {self._max_delta[i]:.3f}) in one control step", now)
        return None

    def end_command_stream(self) -> None:
        """Commands stopped (episode over, reset motion): the next command starts a new stream."""
        self._last_command = None

    # ------------------------------------------------------------------ watchdog and reset
    def _needed(self) -> list[str]:
        return ["joints"] + (self._ee_names if self.require_ee_pose else []) + \
            (["wrench"] if self.require_wrench else [])

    def stale_sources(self, now: float) -> list[str]:
        limit = self.config.safety.stale_timeout_s
        return [s for s in self._needed() if now - self._readings[s].arrived > limit]

    def tick(self, now: float) -> Violation | None:
        """The watchdog: call at the control rate. Data that stopped arriving is a violation."""
        stale = [s for s in self.stale_sources(now) if not math.isinf(self._readings[s].arrived)]
        if stale and self.violation is None:
            return self._trip("stale", ", ".join(f"{s} {now - self._readings[s].arrived:.3f} s old" for s in stale),
                              now)
        return None

    def reset(self, now: float) -> tuple[bool, str]:
        """Clear the latch — only if every reading is fresh and inside its limits right now."""
        if self._estop:
            return False, "emergency stop still pressed"
        stale = self.stale_sources(now)
        if stale:
            return False, f"no fresh data from {stale}"
        for source in self._readings:
            if (problem := self._limit_problem(source)) is not None:
                return False, f"still unsafe: {problem[0]}: {problem[1]}"
        cleared, self.violation = self.violation, None
        self._last_command = None
        return True, f"cleared ({cleared})" if cleared else "already OK"
