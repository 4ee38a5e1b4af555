"""Between episodes: move home under the limits, then start only from a safe, confirmed state.

`ResetManager` is the episode supervisor's state machine (no ROS):

    IDLE --begin_reset--> RESETTING --home reached--> AWAITING_CONFIRMATION --confirm--> READY
    READY --start_episode--> RUNNING --end_episode--> IDLE
    any phase --safety lost--> FAULT --begin_reset (once safe again)--> RESETTING

The motion is a smooth joint-space interpolation (smoothstep profile, zero velocity at both ends)
whose peak joint speed stays below `home.speed_fraction` of each joint's velocity limit. Real
hardware (`operator_confirmation: true`) waits for an operator; simulated robots skip that wait.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

import numpy as np

from robo_reward.config.hardware import HardwareConfig

SMOOTHSTEP_PEAK = 1.5  # peak of d/dtau (3 tau^2 - 2 tau^3): the profile's top speed / average speed


class Phase(str, enum.Enum):
    IDLE = "idle"
    RESETTING = "resetting"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    READY = "ready"
    RUNNING = "running"
    FAULT = "fault"


def plan_joint_motion(start: np.ndarray, goal: np.ndarray, velocity_limit: np.ndarray, speed_fraction: float,
                      period: float) -> np.ndarray:
    """(N, J) joint targets, one per control period, from just after `start` to exactly `goal`."""
    start, goal = np.asarray(start, float), np.asarray(goal, float)
    distance = np.abs(goal - start)
    duration = float(np.max(SMOOTHSTEP_PEAK * distance / (np.asarray(velocity_limit) * speed_fraction)))
    steps = max(1, math.ceil(duration / period))
    tau = np.arange(1, steps + 1) / steps
    profile = 3 * tau ** 2 - 2 * tau ** 3
    return start + profile[:, None] * (goal - start)


def sample_home(config: HardwareConfig, rng: np.random.Generator) -> np.ndarray:
    """The configured home pose plus the configured uniform randomization, kept inside the limits."""
    home = np.asarray(config.home.positions, float)
    spread = np.broadcast_to(np.asarray(config.home.randomize, float), home.shape)
    m = config.safety.position_margin
    lower = np.asarray(config.joints.position_lower) + m
    upper = np.asarray(config.joints.position_upper) - m
    return np.clip(home + rng.uniform(-spread, spread), lower, upper)


def restart_safe_first_episode(wall_time_s: float) -> int:
    """The first episode id of a manager started at `wall_time_s`: its start time in milliseconds, so
    a manager restarted mid-run numbers past every id the one before it gave (fewer than one episode
    per millisecond). Readers key on ids — the learner drops the steps of an episode it saw succeed,
    the actor's link pairs outcomes with episodes — and a reused id joins an old outcome to a new
    episode. Exact in the float64 fields ids travel in."""
    return int(wall_time_s * 1000)


@dataclass
class ResetManager:
    config: HardwareConfig
    seed: int = 0
    settle_timeout_s: float = 3.0  # after the motion, time allowed to come within tolerance of home
    # lockstep simulation (each target is one physics step): the next target waits for the state that
    # answers the last one. A real robot moves on its own clock: targets stream one per period
    wait_for_answer: bool = False
    # the id of the first episode (each next one counts on); the node numbers from its start time
    # (`restart_safe_first_episode`) so that a restarted manager never reuses an id
    first_episode: int = 1
    phase: Phase = Phase.IDLE
    reason: str = "waiting for the first reset"
    goal: np.ndarray | None = None
    outcomes: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.first_episode < 1:  # readers take -1 for "no episode" and negative ids for untracked steps
            raise ValueError(f"first_episode must be >= 1, got {self.first_episode}")
        self.episode = self.first_episode - 1  # the running or last episode's id
        self._rng = np.random.default_rng(self.seed)
        self._plan: np.ndarray | None = None
        self._step = 0
        self._motion_end = math.inf
        self._sent_from = -math.inf  # source time of the state the last target was sent from
        self._sent_at = math.inf  # when it was sent (this clock)

    @property
    def number(self) -> int:
        """The running or last episode's count since this manager started (0 before the first): what a
        person reads beside the id, and what a simulated robot's k-th scene reset is seeded with."""
        return self.episode - self.first_episode + 1

    def _set(self, phase: Phase, reason: str) -> None:
        self.phase, self.reason = phase, reason

    def at_home(self, q: np.ndarray | None) -> bool:
        return q is not None and self.goal is not None and \
            bool(np.max(np.abs(np.asarray(q) - self.goal)) <= self.config.home.tolerance)

    def begin_reset(self, q: np.ndarray | None, safety_ok: bool, now: float) -> tuple[bool, str]:
        if self.phase == Phase.RUNNING:
            return False, "an episode is running: end it first"
        if not safety_ok:
            return False, "safety monitor is not OK: resolve and reset it before moving"
        if q is None:
            return False, "no joint state yet"
        self.goal = sample_home(self.config, self._rng)
        self._plan = plan_joint_motion(q, self.goal, np.asarray(self.config.joints.velocity_limit),
                                       self.config.home.speed_fraction, self.config.control_period_s)
        self._step, self._motion_end, self._sent_from, self._sent_at = 0, math.inf, -math.inf, math.inf
        self._set(Phase.RESETTING, f"moving home in {len(self._plan)} steps")
        return True, self.reason

    def next_target(self, q: np.ndarray | None, q_stamp: float, safety_ok: bool, now: float) -> np.ndarray | None:
        """The joint target to send this control period while resetting (None: send nothing).

        `q_stamp` is the source time of `q`. Home is judged only on a state newer than the one the
        last target was sent from: in lockstep simulation a target still in flight would move the
        robot past the state the episode is said to start from (its reward stream's first frame),
        so there (`wait_for_answer`) no target goes out before that answer either."""
        if self.phase in (Phase.RESETTING, Phase.READY, Phase.AWAITING_CONFIRMATION, Phase.RUNNING) \
                and not safety_ok:
            self._set(Phase.FAULT, f"safety lost while {self.phase.value}: motion stopped")
            return None
        if self.phase != Phase.RESETTING or self._plan is None:
            return None
        answered = q_stamp > self._sent_from
        # refused, lost, or a frozen stamp; streaming blind, only as long as a stale state is allowed
        answer_timeout = self.settle_timeout_s if self.wait_for_answer else \
            max(self.config.safety.stale_timeout_s, 3 * self.config.control_period_s)
        if not answered and now - self._sent_at > answer_timeout:
            self._set(Phase.FAULT, f"no joint state answered the last home target within {answer_timeout} s")
            return None
        may_send = answered or not self.wait_for_answer
        if may_send and self._step < len(self._plan):
            target = self._plan[self._step]
            self._step += 1
            if self._step == len(self._plan):
                self._motion_end = now
            return self._sent(target, answered, q_stamp, now)
        if answered and self.at_home(q):
            if self.config.operator_confirmation:
                self._set(Phase.AWAITING_CONFIRMATION, "at home: waiting for the operator to confirm")
            else:
                self._set(Phase.READY, "at home")
            return None
        if now - self._motion_end > self.settle_timeout_s:
            err = np.max(np.abs(np.asarray(q) - self.goal)) if q is not None else math.inf
            self._set(Phase.FAULT, f"home not reached within {self.settle_timeout_s} s (max error {err:.4f} rad)")
            return None
        return self._sent(self.goal, answered, q_stamp, now) if may_send else None  # hold the goal while it settles

    def _sent(self, target: np.ndarray, answered: bool, q_stamp: float, now: float) -> np.ndarray:
        """A target goes out: an answered state starts a new wait for the next answer (a streamed
        target sent again from the same state does not restart it)."""
        if answered:
            self._sent_from, self._sent_at = q_stamp, now
        return target

    def confirm(self, q: np.ndarray | None, safety_ok: bool, operator: str = "operator") -> tuple[bool, str]:
        if self.phase != Phase.AWAITING_CONFIRMATION:
            return False, f"nothing to confirm (phase {self.phase.value})"
        if not safety_ok or not self.at_home(q):
            return False, "not confirmed: " + ("safety monitor not OK" if not safety_ok else "robot left home")
        self._set(Phase.READY, f"confirmed by {operator}")
        return True, self.reason

    def start_episode(self, q: np.ndarray | None, safety_ok: bool) -> tuple[bool, str]:
        """The only way into RUNNING: READY, safety OK, and still at home."""
        if self.phase != Phase.READY:
            return False, f"cannot start: phase is {self.phase.value} ({self.reason})"
        if not safety_ok:
            return False, "cannot start: safety monitor not OK"
        if not self.at_home(q):
            return False, "cannot start: robot is not at the home pose"
        self.episode += 1
        self._set(Phase.RUNNING, f"episode {self.episode} running")
        return True, self.reason

    def end_episode(self, success: bool | None, source: str) -> None:
        """Record the outcome (from the reward model, the time limit or an operator) and go IDLE."""
        if self.phase == Phase.RUNNING:
            self.outcomes.append({"episode": self.episode, "success": success, "source": source})
            self._set(Phase.IDLE, f"episode {self.episode} ended ({source})")
