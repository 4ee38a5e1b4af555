"""The one actor loop: env + frozen base + residual -> transitions. `rl train` (robosuite) and the
robot's actor (a robot env over ROS 2) run this same function; only the env below it differs.

The base is called exactly once per control step: its action at the next observation is stored as
the transition's `next_base_action` and is the one executed at the next step, so a stateful base
(an ACT action-chunk queue, a noisy scripted controller) sees one call per executed action, and
`reset()` at every episode start.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from robo_reward.envs.observations import flat_state
from robo_reward.envs.wrappers import READING_KEY
from robo_reward.rewards.shaping import RewardReading
from robo_reward.rl.policies import Policy, checked_action
from robo_reward.rl.transition import Transition

ChooseAction = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (flat obs, base action) -> action to send


@dataclass
class EpisodeOutcome:
    episode: int
    length: int  # transitions emitted
    success: bool


def run_episode(env: gym.Env, base: Policy, choose_action: ChooseAction, emit: Callable[[Transition], None],
                episode: int | None = None, seed: int | None = None, learn_commanded: bool = False) -> EpisodeOutcome:
    """Run one episode to its end, handing every executed step to `emit`.

    `episode`: the id stamped on the transitions; None takes the env's (info["episode"] at reset,
    a robot's episode counter); info["step"] at reset: the first step index (a robot episode taken
    up again after a refused command numbers on past it). The env may report in `info`: "executed_action" (what really went
    out: the policy's or the operator's command, limited), "intervention", "stamp" (source time of the new observation),
    "success", a reward wrapper's reading (READING_KEY; else the env's success and reward stand in),
    and "executed": False for a step whose command never went out (no transition; with
    "episode_success" when the episode had ended just before it — an operator's mark —, which makes
    the step before the episode's terminal one). Each transition is emitted once the next step shows
    whether it was the last. A transition carries the executed action, or with `learn_commanded` the
    commanded one wherever no operator intervened (a limiter's rewrite then belongs to the dynamics).
    """
    act_dim = int(env.action_space.shape[0])
    obs, info = env.reset(seed=seed)
    episode = int(info["episode"]) if episode is None else episode
    stamp, reading = float(info.get("stamp", 0.0)), info.get(READING_KEY, RewardReading())
    base.reset(seed)
    base_action = checked_action(base.act(obs), act_dim, "base policy")
    first = step = int(info.get("step", 0))
    success, done = False, False
    last: Transition | None = None  # emitted once the next step shows whether it was the episode's last
    while not done:
        flat = flat_state(obs)
        action = checked_action(choose_action(flat, base_action), act_dim, "residual actor")
        next_obs, reward, terminated, truncated, info = env.step(action)
        done = bool(terminated or truncated)
        if not info.get("executed", True):  # nothing went out: the episode ends here for the learner
            if last is not None and "episode_success" in info:  # it ended just before this step
                success = success or bool(info["episode_success"])
                last = dataclasses.replace(last, terminated=bool(info["episode_success"]),
                                           truncated=not info["episode_success"], success=success,
                                           reward=float(success))
            break
        next_base_action = checked_action(base.act(next_obs), act_dim, "base policy")
        intervention = bool(info.get("intervention", False))
        executed = checked_action(info.get("executed_action", action), act_dim, "executed action")
        learned = action if learn_commanded and not intervention else executed
        next_stamp = float(info.get("stamp", step + 1))
        next_reading = info.get(READING_KEY, RewardReading(success=bool(info.get("success", False)),
                                                           reward=float(reward)))
        if last is not None:
            emit(last)
        last = Transition(flat, base_action, learned, flat_state(next_obs), next_base_action,
                          stamp=next_stamp, episode=episode, step=step, terminated=bool(terminated),
                          truncated=bool(truncated), intervention=intervention,
                          obs_stamp=stamp).with_readings(reading, next_reading)
        obs, base_action, stamp, reading = next_obs, next_base_action, next_stamp, next_reading
        step += 1
        success = success or bool(info.get("success", False))
    if last is not None:
        emit(last)
    return EpisodeOutcome(episode, step - first, success)
