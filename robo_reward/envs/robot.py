"""A real (or simulated-behind-topics) robot as a Gymnasium env, so the robot runs the same actor
loop as `rl train`. The env talks to a `RobotLink` — the robot's transport — whose ROS 2
implementation lives in ros_nodes/ (the library never imports rclpy).

- reset: waits until the reset manager runs an episode (home reached, safety OK, on hardware an
  operator confirmed) and a fresh observation is in, then returns it with the episode's id.
- step: sends one command through the gate (fresh state, safety OK, episode running), paced at the
  control period, and returns the newest observation as late as the actor's measured decision
  time allows (90% of the period when choosing is fast): the state the command led to, as a
  simulator steps a control period of physics, with commands still one period apart.
  Every observation the actor acts on is announced (`observed`): the reward server scores the
  camera frames of exactly those times, so a reward model steps once per control step, as in `rl
  train`, not once per camera frame.
  A refused command ends the episode for the actor with "executed": False: nothing went out, no
  transition exists.
- the operator's command replaces the policy's while they intervene (HIL-SERL): `OperatorTakeover`,
  above the joint limit guard, so that what the operator commands is limited like the policy's
  (`robot_env` builds the stack).
- termination: success (the robot's success signal, a success detector or the operator's mark, as
  the link reports it) terminates with reward 1 — the sparse reward is the same on a robot as in
  simulation; the reset manager ending the episode otherwise (time limit, safety) truncates.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from robo_reward.envs.limits import JOINT_STATE_KEY, JointLimitGuard, JointLimits
from robo_reward.errors import RoboRewardError


DECISION_SHARE = 0.1  # of a control period at least, left between the next observation and the next command
DECISION_DECAY = 0.8  # per step: how fast the measured decision time forgets one slow step


class LinkClosed(Exception):
    """The transport is shutting down: the actor loop ends."""


@dataclass(frozen=True)
class RobotReading:
    """One observation as it arrived: the observation dict, its source time (state stamp) and the
    joint state it was built from (names, positions, velocities: what the limiter reads)."""

    obs: Mapping[str, np.ndarray]
    stamp: float
    joints: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class EpisodeStatus:
    running: bool
    episode: int
    ended: bool = False  # this episode's outcome is in (success, operator mark, time limit, safety)
    success: bool = False
    reason: str = ""


class RobotLink(Protocol):
    control_period_s: float
    observation_timeout_s: float

    def wait_ready(self, timeout_s: float) -> tuple[RobotReading, EpisodeStatus] | None:
        """A running episode, safety OK and fresh inputs; None at the timeout. Raises LinkClosed."""

    def gate(self) -> tuple[bool, str]:
        """Whether a command may go out now, and why not."""

    def send(self, action: np.ndarray) -> None: ...

    def wait_newer(self, stamp: float, timeout_s: float) -> RobotReading | None:
        """The newest observation, once one with a source time after `stamp` is in; None at the
        timeout. Raises LinkClosed."""

    def episode_status(self, episode: int, wait_s: float = 0.0) -> EpisodeStatus:
        """Where episode `episode` stands (its outcome, once the reset manager has one), waiting up to
        `wait_s` for that outcome if it is not in yet. Raises LinkClosed."""

    def operator_command(self) -> np.ndarray | None:
        """The operator's command while they intervene and it is fresh, else None."""

    def observed(self, stamp: float, episode: int) -> None:
        """The actor acts on the observation of source time `stamp` in `episode`: a reward model
        scores the camera frames of that time, one reading per control step as the reward wrapper
        scores in `rl train`. Called once per observation."""


class RobotEnv(gym.Env):
    """`max_episode_steps`: the episode's time limit in commands (truncation), counted here as a
    TimeLimit counts it, so the last transition is known to be the last when it happens."""

    def __init__(self, link: RobotLink, act_dim: int, max_episode_steps: int, ready_poll_s: float = 1.0):
        self.link, self.act_dim, self.ready_poll_s = link, act_dim, ready_poll_s
        self.max_episode_steps = max_episode_steps
        self.action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
        self._reading: RobotReading | None = None
        self._episode = -1
        self._ended = -1  # the last episode that ended for the actor (success, time limit, reset manager)
        self._steps = 0  # commands sent in this episode (the time limit counts these)
        self._index = 0  # the step index of the next transition: a refused step leaves its index out
        self._last_send = float("-inf")
        self.refused: tuple[int, int, str] | None = None  # (episode, step, why) of the last command not sent
        self._announced: tuple[float, int] | None = None  # (source time, episode) last announced to the link
        self._handed_back: float | None = None  # when reset/step last returned an observation (monotonic)
        self._decision_s = 0.0  # the actor's time from an observation to its next command: a decaying max

    def _announce(self, reading: RobotReading) -> None:
        """Once per observation: an episode taken up after a refused command starts from the state
        it stopped at, already announced."""
        if (reading.stamp, self._episode) != self._announced:
            self._announced = (reading.stamp, self._episode)
            self.link.observed(reading.stamp, self._episode)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict[str, Any]]:
        """Waits (as long as it takes: an operator may be resetting the scene) for a running episode —
        a new one once the last has ended; the same one again after a refused command, which goes on
        counting its commands and numbering its steps (info["step"]) past the one that was refused,
        so the learner sees the gap."""
        while True:
            ready = self.link.wait_ready(self.ready_poll_s)
            if ready is not None and ready[1].episode != self._ended:
                break
            if ready is not None:  # the reset manager has not closed the ended episode yet
                time.sleep(self.link.control_period_s / 2)
        self._reading, status = ready
        if status.episode != self._episode:
            self._episode, self._steps, self._index = status.episode, 0, 0
        self._announce(self._reading)
        self._handed_back = time.monotonic()
        return dict(self._reading.obs), {"episode": status.episode, "step": self._index, "stamp": self._reading.stamp,
                                         JOINT_STATE_KEY: self._reading.joints}

    def step(self, action: np.ndarray):
        started = time.monotonic()
        if self._handed_back is not None:
            self._decision_s = max(started - self._handed_back, DECISION_DECAY * self._decision_s)
        result = self._step(action)
        self._handed_back = time.monotonic()
        return result

    def _step(self, action: np.ndarray):
        if self._reading is None:
            raise RuntimeError("RobotEnv.step before reset")
        wait = self._last_send + self.link.control_period_s - time.monotonic()
        if wait > 0:  # commands go out at the control rate, not faster
            time.sleep(wait)
        ok, reason = self.link.gate()  # checked last, right before sending: a stop is never a period late
        self._index += 1
        if not ok:
            info = {"executed": False, "stopped": reason}
            # a gate that closes because the episode ended (an operator's mark) may close before the
            # outcome arrives: wait for it as long as an observation may be late, or the success is lost
            status = self.link.episode_status(self._episode, wait_s=self.link.observation_timeout_s)
            if status.ended:  # it ended between two steps (an operator's mark): the last step was the end
                info["episode_success"] = status.success
                self._ended = self._episode
            else:  # a fail-safe inside a running episode: the learner will see a gap
                self.refused = (self._episode, self._index - 1, reason)
            return dict(self._reading.obs), 0.0, False, True, info
        executed = np.asarray(action, np.float32)
        self.link.send(executed)
        self._last_send = time.monotonic()
        self._steps += 1
        # the next observation is the state as near a control period on as the actor's own decision
        # time allows (a simulator's next state is a control period of physics on): a driver
        # publishing faster than the control rate would otherwise hand back a state from before the
        # command acted. The actor keeps the time it measurably takes to choose (at least
        # DECISION_SHARE of the period), so commands still go out at the control rate.
        period = self.link.control_period_s
        settle = self._last_send + period - max(DECISION_SHARE * period, 1.2 * self._decision_s) - time.monotonic()
        if settle > 0:
            time.sleep(settle)
        reading = self.link.wait_newer(self._reading.stamp, self.link.observation_timeout_s)
        if reading is None:  # the command went out but the robot never reported back
            reason = f"no observation within {self.link.observation_timeout_s} s"
            self.refused = (self._episode, self._index - 1, reason)
            return dict(self._reading.obs), 0.0, False, True, {"executed": False, "stopped": reason}
        self._reading = reading
        self._announce(reading)
        status = self.link.episode_status(self._episode)
        success = status.success
        ended = not status.running or status.ended or self._steps >= self.max_episode_steps
        info = {"executed_action": executed, "stamp": reading.stamp,
                "success": success, "episode": self._episode, JOINT_STATE_KEY: reading.joints}
        if ended and not success:
            info["stopped"] = status.reason if status.ended or not status.running else "time limit"
        if ended:
            self._ended = self._episode
        return dict(reading.obs), float(success), success, ended and not success, info


class OperatorTakeover(gym.Wrapper):
    """While the operator intervenes with a fresh command, it replaces the policy's action
    (info["intervention"]). It wraps the joint limit guard, which then limits the operator's command
    as it limits the policy's: a takeover near a joint limit is slowed the same way."""

    def __init__(self, env: gym.Env, link: RobotLink):
        super().__init__(env)
        self.link = link

    def step(self, action):
        operator = self.link.operator_command()
        if operator is not None:
            if np.shape(operator) != np.shape(action) or not np.all(np.isfinite(operator)):
                raise RoboRewardError(f"operator command {np.asarray(operator).tolist()} (shape {np.shape(operator)}): "
                                      f"the robot takes {np.shape(action)} finite values; nothing sent")
            action = np.clip(np.asarray(operator, np.float32), -1.0, 1.0)
        next_obs, reward, terminated, truncated, info = self.env.step(action)
        return next_obs, reward, terminated, truncated, dict(info, intervention=operator is not None)


def robot_env(link: RobotLink, act_dim: int, max_episode_steps: int, limits: JointLimits) -> gym.Env:
    """The robot as the actor loop drives it: operator takeover, then the joint limit guard, then the robot."""
    return OperatorTakeover(JointLimitGuard(RobotEnv(link, act_dim, max_episode_steps), limits), link)
