"""One actor/learner core for simulation and robots: windows that respect episodes and gaps, the
base called once per step, and the same transitions whatever drives the env."""

from __future__ import annotations

import re
import time
import warnings

import numpy as np
import pytest

from robo_reward.envs.limits import JointLimits
from robo_reward.envs.robot import robot_env
from robo_reward.errors import RoboRewardError
from robo_reward.rl.actor_loop import run_episode
from robo_reward.rl.buffers import NStepReplayBuffer

GAMMA = 0.9


def _step(buffer: NStepReplayBuffer, episode: int, t: int, reward: float, end: str = "", to_demo: bool = False):
    """obs_t = [episode * 100 + t]; `end` is "", "terminated" or "truncated"."""
    o = episode * 100 + t
    buffer.add([o], [0.0], [0.0], reward, [o + 1], [0.0], terminated=end == "terminated",
               truncated=end == "truncated", episode=episode, step=t, to_demo=to_demo)


def _items(buffer: NStepReplayBuffer) -> list[tuple[float, float, float, float]]:
    """(obs, n-step return, next obs, discount) of every stored item, in write order."""
    n = len(buffer)
    return [(float(buffer.obs[i, 0]), round(float(buffer.n_step_return[i]), 6), float(buffer.next_obs[i, 0]),
             round(float(buffer.discount[i]), 6)) for i in range(n)]


def test_a_dropped_transition_closes_the_window_with_bootstrap() -> None:
    buffer = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    _step(buffer, 0, 0, 1.0)
    _step(buffer, 0, 1, 2.0)
    # step 2 never reached the learner (no reward for it): 0 and 1 must not join 3
    _step(buffer, 0, 3, 4.0)
    _step(buffer, 0, 4, 5.0, end="terminated")
    assert _items(buffer) == [
        (0.0, round(1 + 0.9 * 2, 6), 2.0, round(0.81, 6)),  # window 0-1, bootstraps from obs 2
        (1.0, 2.0, 2.0, 0.9),
        (3.0, round(4 + 0.9 * 5, 6), 5.0, 0.0),  # window 3-4 ends the episode
        (4.0, 5.0, 5.0, 0.0),
    ]


def test_an_episode_boundary_never_joins_even_without_its_last_transition() -> None:
    buffer = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    _step(buffer, 0, 0, 1.0)
    _step(buffer, 0, 1, 1.0)  # episode 0's last transition (with its end flag) was lost
    _step(buffer, 1, 0, 7.0)
    _step(buffer, 1, 1, 8.0, end="truncated")
    obs_and_next = [(o, nxt) for o, _, nxt, _ in _items(buffer)]
    assert obs_and_next == [(0.0, 2.0), (1.0, 2.0), (100.0, 102.0), (101.0, 102.0)]
    # a window starting in episode 1 sums only episode 1's rewards
    assert _items(buffer)[2][1] == round(7 + 0.9 * 8, 6)


def test_interventions_keep_windows_intact_and_go_to_the_demo_buffer() -> None:
    """The same episode gives the same n-step items whether or not some steps were interventions;
    only where the items are stored changes."""
    plain = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    online = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    demo = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    online.demo_sink = demo
    rewards = [0.0, 0.5, 0.0, 1.0, 0.0, 2.0]
    for t, r in enumerate(rewards):
        end = "terminated" if t == len(rewards) - 1 else ""
        _step(plain, 0, t, r, end)
        _step(online, 0, t, r, end, to_demo=t in (2, 3))
    by_obs = {item[0]: item for item in _items(online) + _items(demo)}
    assert by_obs == {item[0]: item for item in _items(plain)}
    assert sorted(item[0] for item in _items(demo)) == [2.0, 3.0]


def test_pending_episode_tags_survive_a_checkpoint() -> None:
    buffer = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    _step(buffer, 4, 7, 1.0)
    restored = NStepReplayBuffer.from_state_dict(buffer.state_dict())
    _step(restored, 4, 9, 1.0)  # step 8 is missing: the restored window must close, not join
    assert _items(restored)[0] == (407.0, 1.0, 408.0, 0.9)


def test_episode_and_step_come_together() -> None:
    buffer = NStepReplayBuffer(capacity=4, obs_dim=1, act_dim=1)
    with pytest.raises(ValueError, match="both episode and step"):
        buffer.add([0], [0], [0], 0.0, [1], [0], False, False, episode=1)
    with pytest.raises(ValueError, match="demo_sink"):
        buffer.add([0], [0], [0], 0.0, [1], [0], False, False, episode=1, step=0, to_demo=True)
    assert np.all(buffer.obs == 0)


class ChunkQueueBase:
    """ACT-style: predicts a chunk of `size` actions from the observation when its queue is empty and
    executes one per call. Action j of chunk i is (i + j / 10) / 10 in every dimension, so the
    executed sequence says exactly which chunk entries ran, and in which order."""

    def __init__(self, act_dim: int, size: int = 4):
        self.act_dim, self.size = act_dim, size
        self.queue: list[np.ndarray] = []
        self.chunks = 0

    def reset(self, seed=None) -> None:
        self.queue, self.chunks = [], 0

    def act(self, obs) -> np.ndarray:
        if not self.queue:
            self.queue = [np.full(self.act_dim, (self.chunks + j / 10) / 10, np.float32) for j in range(self.size)]
            self.chunks += 1
        return self.queue.pop(0)


def _chunk_value(i: int) -> float:
    return (i // 4 + (i % 4) / 10) / 10


def test_a_chunked_base_runs_each_action_once_in_order_through_the_actor_loop() -> None:
    from sim import make_env

    env = make_env("lift", "Panda", horizon=11, terminate_on_success=False)
    base = ChunkQueueBase(env.action_space.shape[0])
    for episode in range(2):  # the queue starts over at every episode (reset)
        transitions = []
        outcome = run_episode(env, base, lambda obs, base_action: base_action, transitions.append, episode=episode,
                              seed=episode)
        assert outcome.length == 11 and [t.step for t in transitions] == list(range(11))
        executed = [float(t.action[0]) for t in transitions]
        np.testing.assert_allclose(executed, [_chunk_value(i) for i in range(11)], atol=1e-7)
        for before, after in zip(transitions, transitions[1:]):  # the stored next base action runs next
            np.testing.assert_array_equal(before.next_base_action, after.base_action)
        assert transitions[-1].truncated and not any(t.truncated for t in transitions[:-1])
        assert {t.episode for t in transitions} == {episode}
    env.close()


class FlakyLink:
    """A robot link whose command gate refuses at chosen control steps (a stale input, a moment
    without a safety OK); observations advance one control period per command."""

    control_period_s = observation_timeout_s = 0.0
    joint_position = 0.0  # of its one joint "j", limits +-1 rad (ONE_JOINT)

    def __init__(self, refuse_at: set[int]):
        self.refuse_at, self.checks, self.stamp = refuse_at, 0, 0.0
        self.announced: list[tuple[float, int]] = []  # (stamp, episode) of the observations acted on

    def _reading(self):
        from robo_reward.envs.robot import RobotReading

        return RobotReading({"observation.state": np.array([self.stamp], np.float32)}, self.stamp,
                            {"names": ["j"], "positions": [self.joint_position], "velocities": [0.0]})

    def wait_ready(self, timeout_s):
        from robo_reward.envs.robot import EpisodeStatus

        return self._reading(), EpisodeStatus(running=True, episode=4)

    def gate(self):
        self.checks += 1
        return (False, "stale observation") if self.checks in self.refuse_at else (True, "ok")

    def send(self, action):
        self.stamp += 1.0

    def wait_newer(self, stamp, timeout_s):
        return self._reading()

    def episode_status(self, episode, wait_s=0.0):
        from robo_reward.envs.robot import EpisodeStatus

        return EpisodeStatus(running=True, episode=episode)

    def operator_command(self):
        return None

    def observed(self, stamp, episode):
        self.announced.append((stamp, episode))


class OperatorLink(FlakyLink):
    """An operator takes over at the chosen control steps (counted from 1), commanding 0.5."""

    def __init__(self, takes_over: set[int], joint_position: float = 0.0):
        super().__init__(refuse_at=set())
        self.takes_over, self.joint_position = takes_over, joint_position

    def operator_command(self):
        # read before the gate's check of the same command
        return np.array([0.5], np.float32) if self.checks + 1 in self.takes_over else None


class MarkedLink(FlakyLink):
    """The operator marks the episode a success after its 3rd command: the gate closes at once, and
    the reset manager's outcome reaches the link `outcome_delay_s` later (DDS under load)."""

    observation_timeout_s = 0.5

    def __init__(self, outcome_delay_s: float):
        super().__init__(refuse_at=set())
        self.outcome_delay_s, self.arrives = outcome_delay_s, float("inf")

    def gate(self):
        if self.stamp < 3:
            return True, "ok"
        self.arrives = min(self.arrives, time.monotonic() + self.outcome_delay_s)
        return False, "episode is stopped"

    def episode_status(self, episode, wait_s=0.0):
        from robo_reward.envs.robot import EpisodeStatus

        time.sleep(max(0.0, min(self.arrives, time.monotonic() + wait_s) - time.monotonic()))
        ended = time.monotonic() >= self.arrives
        return EpisodeStatus(running=not ended, episode=episode, ended=ended, success=ended,
                             reason="operator" if ended else "")


@pytest.mark.parametrize("learn_commanded", [False, True])
def test_transitions_carry_what_went_out_or_with_learn_commanded_what_the_actor_commanded(learn_commanded) -> None:
    """Full-speed commands that the joint limit guard scales down at every step: by default the learner
    gets the guarded action that went out (the same as a bare run of the guard reports); with
    learn_commanded the command itself. An operator's takeover is stored as the operator's either way."""
    from robo_reward.rl.runs import make_policy_env

    commands = [np.r_[np.sign(np.sin(t * 1.3 + np.arange(6))), -1.0].astype(np.float32) for t in range(12)]
    env = make_policy_env({"task": "lift", "robot": "Panda", "horizon": 12})
    env.reset(seed=3)
    went_out = [env.step(c)[4]["executed_action"] for c in commands]
    steps, transitions = iter(commands), []
    run_episode(env, ChunkQueueBase(7), lambda obs, base_action: next(steps), transitions.append, episode=0,
                seed=3, learn_commanded=learn_commanded)
    stored = np.array([t.action for t in transitions])
    assert len(stored) == 12 and np.abs(np.array(went_out) - np.array(commands)).max(axis=1).min() > 0.5
    np.testing.assert_array_equal(stored, commands if learn_commanded else went_out)

    env = robot_env(OperatorLink(takes_over={2, 4}), act_dim=1, max_episode_steps=5, limits=ONE_JOINT)
    transitions = []
    run_episode(env, ChunkQueueBase(1), lambda obs, base_action: np.array([-0.25], np.float32), transitions.append,
                learn_commanded=learn_commanded)
    assert [float(t.action[0]) for t in transitions] == [-0.25, 0.5, -0.25, 0.5, -0.25]
    assert [t.intervention for t in transitions] == [False, True, False, True, False]


ONE_JOINT = JointLimits(("j",), np.array([-1.0]), np.array([1.0]), np.array([1.0]), arm_dims=(0,))


def test_the_joint_limit_guard_limits_an_operators_takeover_like_the_policy() -> None:
    """The joint sits 0.03 rad below its upper limit, inside the guard's clearance: every command
    toward it goes out as 0, the operator's 0.5 as much as the policy's 0.25; the learner stores what
    went out, marked as the operator's."""
    env = robot_env(OperatorLink(takes_over={2, 4}, joint_position=0.97), act_dim=1, max_episode_steps=5,
                    limits=ONE_JOINT)
    env.reset()
    steps = [env.step(np.array([0.25], np.float32))[4] for _ in range(5)]
    assert [float(info["executed_action"][0]) for info in steps] == [0.0] * 5
    assert [info["limit_change"] for info in steps] == [0.25, 0.5, 0.25, 0.5, 0.25]
    assert [info["intervention"] for info in steps] == [False, True, False, True, False]
    env = robot_env(OperatorLink(takes_over={2, 4}, joint_position=0.97), act_dim=1, max_episode_steps=5,
                    limits=ONE_JOINT)  # a new robot episode
    transitions = []
    run_episode(env, ChunkQueueBase(1), lambda obs, base_action: np.array([0.25], np.float32), transitions.append)
    assert [float(t.action[0]) for t in transitions] == [0.0] * 5
    assert [t.intervention for t in transitions] == [False, True, False, True, False]


@pytest.mark.parametrize("command", [[0.0, 0.0, 0.0], [float("nan")]])
def test_an_operator_command_of_the_wrong_size_or_not_finite_sends_nothing(command) -> None:
    class BadOperator(OperatorLink):
        def operator_command(self):
            return np.array(command, np.float32)

        def send(self, action):
            raise AssertionError(f"sent {action}")

    env = robot_env(BadOperator(takes_over=set()), act_dim=1, max_episode_steps=5, limits=ONE_JOINT)
    env.reset()
    with pytest.raises(RoboRewardError, match=r"operator command .* the robot takes \(1,\) finite values; nothing"):
        env.step(np.array([0.25], np.float32))


class FastDriverLink(FlakyLink):
    """A driver that publishes its state every millisecond (real arms do, at 100-1000 Hz), stamped
    with the time it was measured; control at 20 Hz."""

    control_period_s = 0.05
    observation_timeout_s = 1.0

    def __init__(self):
        super().__init__(refuse_at=set())
        self.sends: list[float] = []

    def _reading(self):
        self.stamp = round(time.monotonic(), 3)
        return super()._reading()

    def send(self, action):
        self.sends.append(time.monotonic())


@pytest.mark.parametrize("decision_s", [0.0, 0.02])
def test_a_robot_transitions_next_state_is_the_state_its_command_led_to_at_the_control_rate(decision_s) -> None:
    """As a simulator's next state is a control period of physics after the command, a fast driver's
    next observation is the state as late after the send as the actor's decision time allows (0.9
    of a period when choosing is instant) — not its next message, a millisecond after the send, from
    before the command acted — and commands still go out one control period apart when choosing
    takes 40% of the period."""
    from robo_reward.envs.robot import DECISION_SHARE, RobotEnv

    link = FastDriverLink()

    def choose(obs, base_action):
        time.sleep(decision_s)
        return base_action

    transitions = []
    run_episode(RobotEnv(link, act_dim=1, max_episode_steps=8), ChunkQueueBase(1), choose, transitions.append)
    assert len(transitions) == len(link.sends) == 8
    period = link.control_period_s
    # measured decision time includes the loop's own work (a few ms on a loaded machine): bounds, not equalities
    settled = np.array([t.stamp - sent for t, sent in zip(transitions, link.sends)])
    assert settled.min() >= 0.2 * period, settled  # the driver's next message came ~0 ms after the send
    assert np.median(settled) >= period - max(DECISION_SHARE * period, 1.2 * decision_s) - 0.01, settled
    intervals = np.diff(link.sends)
    # a fixed settle with a 20 ms decision sends every 65 ms; 10 ms of room for a loaded machine's sleeps
    assert min(intervals) >= period - 1e-3 and np.median(intervals) < period + 0.010, intervals


def test_a_robot_episode_taken_up_after_a_refused_command_numbers_on_past_the_gap() -> None:
    """The gate refuses the 4th command: the actor's episode ends there for the learner, then the
    actor takes the same robot episode up again. Its time limit still counts 6 commands, and the step
    index of the refused command stays unused, so no n-step window joins the states on either side.
    Every observation acted on is announced once (the reward server scores the frames of those
    times, so a reward model steps once per control step)."""
    from robo_reward.envs.robot import RobotEnv

    link = FlakyLink({4})
    env = RobotEnv(link, act_dim=1, max_episode_steps=6)
    base = ChunkQueueBase(1)
    transitions = []
    first = run_episode(env, base, lambda obs, base_action: base_action, transitions.append)
    assert env.refused == (4, 3, "stale observation")  # what the actor node logs
    env.refused = None
    again = run_episode(env, base, lambda obs, base_action: base_action, transitions.append)
    assert (first.episode, first.length, again.episode, again.length) == (4, 3, 4, 3) and env.refused is None
    assert [t.step for t in transitions] == [0, 1, 2, 4, 5, 6]
    assert [t.truncated for t in transitions] == [False] * 5 + [True]  # 6 commands: the time limit
    acted_on = sorted({t.obs_stamp for t in transitions} | {t.stamp for t in transitions})
    assert link.announced == [(stamp, 4) for stamp in acted_on] == [(float(s), 4) for s in range(7)]
    buffer = NStepReplayBuffer(capacity=20, obs_dim=1, act_dim=1, n_step=3, gamma=GAMMA)
    for t in transitions:
        buffer.add_transition(t, 1.0)
    # windows from steps 0-2 bootstrap at obs 3 (the gap); none reaches into the resumed part
    assert [float(x) for x in buffer.next_obs[:3, 0]] == [3.0, 3.0, 3.0]


@pytest.mark.parametrize("outcome_delay_s", [0.05, 2.0])
def test_an_operators_success_mark_that_arrives_after_the_gate_closed_still_ends_the_episode(outcome_delay_s):
    """The mark closes the gate before its outcome arrives. An outcome in within the observation
    timeout makes the last executed step the terminal one with reward 1 (the learner gets the
    success); one later than that leaves the episode a fail-safe gap (nothing terminal, no reward)."""
    from robo_reward.envs.robot import RobotEnv

    env = RobotEnv(MarkedLink(outcome_delay_s), act_dim=1, max_episode_steps=10)
    base = ChunkQueueBase(1)
    transitions = []
    outcome = run_episode(env, base, lambda obs, base_action: base_action, transitions.append)
    assert [t.step for t in transitions] == [0, 1, 2]
    last = transitions[-1]
    if outcome_delay_s < MarkedLink.observation_timeout_s:
        assert outcome.success and last.terminated and last.reward == 1.0 and env.refused is None
    else:
        assert not outcome.success and not last.terminated and last.reward == 0.0
        assert env.refused == (4, 3, "episode is stopped")
    assert all(t.reward == 0.0 and not t.terminated for t in transitions[:-1])


class RobotStack:
    """`robo-reward ros up` of a sim Panda (sim robot, actor, safety monitor, reset manager; with
    `cameras`, its two cameras and the reward server too) in its own process, and a node that records
    the actor's transitions, the episode status and the reward server's readings."""

    def __init__(self, tmp_path, base, args, config_changes=None, cameras: bool = False):
        import json
        import random

        import yaml
        from diagnostic_msgs.msg import DiagnosticStatus
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Float64MultiArray, String

        from robo_reward.config.hardware import CONFIG_DIR
        from robo_reward.runtime.codecs import decode_transition
        from ros_nodes.common import LATCHED, RELIABLE, REWARD_TOPIC, read_named_values, to_sec
        from ros_nodes.runner import BackgroundNode, ros_up_process

        config = yaml.safe_load((CONFIG_DIR / "sim_panda_lift.yaml").read_text())
        if not cameras:
            config["cameras"] = []  # state only: frames cost time and nothing here reads them
        config.update(config_changes or {})
        config_path = tmp_path / "sim_panda_lift_state.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.config = config
        domain = random.randint(10, 99)
        self.watcher = BackgroundNode("test_transitions", domain)
        self.transitions, self.episodes = [], []

        def on_transition(msg) -> None:
            data = np.asarray(msg.data)
            self.transitions.append(decode_transition(data, int(data[0]), 7))

        node = self.watcher.node
        self.rewards: dict[float, dict[str, float]] = {}  # frame stamp -> the reward server's reading
        node.create_subscription(JointState, REWARD_TOPIC, lambda m: self.rewards.__setitem__(
            round(to_sec(m.header.stamp), 6), read_named_values(m)), RELIABLE)
        node.create_subscription(Float64MultiArray, "/robo_reward/transitions", on_transition, RELIABLE)
        node.create_subscription(String, "/robo_reward/episode", lambda m: self.episodes.append(json.loads(m.data)),
                                 LATCHED)
        self.safety_errors: list[str] = []
        node.create_subscription(DiagnosticStatus, "/robo_reward/safety", lambda m: self.safety_errors.append(
            m.message) if m.level == DiagnosticStatus.ERROR else None, LATCHED)
        self.log = tmp_path / "stack.log"
        nodes = ["sim_robot", "actor", "safety_monitor", "reset_manager", *(["reward_server"] if cameras else [])]
        self.proc = ros_up_process(config_path, ["--base", str(base), "--device", "cpu", *args, "--only", *nodes],
                                   domain, self.log)

    def wait_for(self, what: str, predicate, timeout_s: float) -> None:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; {len(self.transitions)} transitions, "
                             f"episodes {self.episodes[-1:]}; log:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        from ros_nodes.runner import interrupt_and_wait

        interrupt_and_wait(self.proc, 60)
        self.watcher.close()


@pytest.mark.slow
def test_the_robot_actor_calls_a_stateful_base_once_per_step_over_dds(lift_demos, tmp_path) -> None:
    """A noisy scripted base draws fresh noise at every call. Through the robot actor (sim robot behind
    ROS 2 topics), each transition's stored next base action must be the base action of the step after
    it — which fails when the base is called a second time per control period. An operator's success
    mark ends an episode with a terminal transition that carries reward 1 (time limits carry 0)."""
    pytest.importorskip("rclpy")
    from std_srvs.srv import SetBool

    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.rl.scripted_policy import save_scripted_policy

    base = tmp_path / "noisy_scripted"
    save_scripted_policy(base, read_env_spec(lift_demos), noise=0.3, seed=5)
    stack = RobotStack(tmp_path, base, ["--max-episode-steps", "20"])
    transitions, episodes = stack.transitions, stack.episodes
    mark = stack.watcher.node.create_client(SetBool, "/reset_manager/mark_outcome")
    try:
        stack.wait_for("45 transitions", lambda: len(transitions) >= 45, 240)
        # the operator marks the running episode a success a few steps in
        stack.wait_for("a running episode", lambda: episodes and episodes[-1]["phase"] == "running"
                       and episodes[-1]["step"] >= 3, 60)
        assert mark.wait_for_service(timeout_sec=20.0)
        future = mark.call_async(SetBool.Request(data=True))
        stack.wait_for("the operator's mark", lambda: future.done(), 30)
        assert future.result().success, future.result()
        # the episode that was running when the call arrived (under load, maybe a later one)
        operator_marked = lambda: [e["outcome"]["episode"] for e in episodes  # noqa: E731
                                   if (e.get("outcome") or {}).get("source") == "operator"]
        stack.wait_for("the marked episode's outcome", operator_marked, 30)
        marked = operator_marked()[0]
        stack.wait_for("the marked episode's end", lambda: any(t.episode == marked and t.terminated
                                                               for t in transitions), 30)
    finally:
        stack.close()
    pairs = [(a, b) for a, b in zip(transitions, transitions[1:]) if (b.episode, b.step) == (a.episode, a.step + 1)]
    assert len(pairs) >= 30
    for a, b in pairs:
        np.testing.assert_array_equal(a.next_base_action, b.base_action)
        np.testing.assert_array_equal(a.next_obs, b.obs)
    assert len({t.episode for t in transitions}) >= 2  # episodes ended and the next one started
    (last,) = [t for t in transitions if t.episode == marked and t.terminated]
    assert last.success and last.reward == 1.0
    assert all(t.reward == 0.0 and not t.success for t in transitions if not t.terminated)
    # the noisy base never drives a joint past a limit on the robot path (the limiter, and states read at
    # the end of each step: the rehearsal used to stop every episode within a second on joint 5's speed)
    assert not [m for m in stack.safety_errors if m.startswith(("joint_position", "joint_velocity"))]
    # the time limit: exactly 20 commands, one transition each, every step index once. Under load the
    # fail-safes may act: a step the actor leaves out (a closed gate: nothing sent; a command the robot
    # never answered: sent, no transition) leaves a gap it logs, and a stale-data safety stop ends an
    # episode early (not a time limit). Every gap must be one the actor logged, and a quiet episode whole.
    left_out = {(int(e), int(s)): why for e, s, why in re.findall(r"episode (\d+): step (\d+) left out: (.*)",
                                                                stack.log.read_text())}
    outcomes = {e["outcome"]["episode"]: e["outcome"] for e in episodes if e.get("outcome")}
    timed_out = {t.episode for t in transitions if t.truncated and outcomes[t.episode]["source"] == "time_limit"}
    assert timed_out
    for episode in timed_out:
        steps = [t.step for t in transitions if t.episode == episode]
        gaps = {s: why for (e, s), why in left_out.items() if e == episode}
        assert steps == sorted(set(steps)) and sorted([*steps, *gaps]) == list(range(steps[-1] + 1)), (steps, gaps)
        unanswered = [s for s, why in gaps.items() if why.startswith("no observation within")]
        assert len(steps) + len(unanswered) == 20 == outcomes[episode]["steps"], (steps, gaps)
    assert any(not any(e == episode for e, _ in left_out) for episode in timed_out), left_out


@pytest.mark.parametrize("config_name", ["sim_panda_lift", "sim_panda_can", "sim_gr1_lift"])
def test_what_the_robot_actor_checks_a_base_against_is_what_the_sim_delivers(config_name) -> None:
    from robo_reward.config.hardware import load_hardware_config
    from robo_reward.rl.runs import make_sim_env
    from robo_reward.runtime.actor import robot_observation_shapes

    config = load_hardware_config(config_name)
    env = make_sim_env({"task": config.sim.task, "robot": config.sim.robot, "horizon": 5})
    obs, _ = env.reset(seed=0)
    shapes = robot_observation_shapes(config)
    assert shapes["observation.state"] == obs["observation.state"].shape
    assert shapes["action"] == env.action_space.shape and "observation.environment_state" in obs
    env.close()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_a_lerobot_base_drives_the_robot_actor_over_dds(kind, lift_demos, tmp_path) -> None:
    """Tiny ACT (chunks of 5) and Diffusion Policy (samples noise, plans chunks of 4) from lerobot's
    factory: one built for another robot stops the actor before it starts, naming every mismatch; the
    right one acts through the robot actor, its chunk consumed one action per control step (each
    transition's next base action is the next step's base action: a second call per step would skip
    one)."""
    pytest.importorskip("rclpy")
    import random

    from policy_helpers import save_tiny_lerobot_base
    from robo_reward.config.hardware import CONFIG_DIR
    from robo_reward.data.lerobot_io import read_env_spec
    from ros_nodes.runner import ros_up_process

    spec = read_env_spec(lift_demos)
    wrong = save_tiny_lerobot_base(kind, tmp_path / "wrong", spec, state_dim=15, act_dim=6)
    log = tmp_path / "wrong.log"
    proc = ros_up_process(CONFIG_DIR / "sim_panda_lift.yaml", ["--base", str(wrong), "--device", "cpu", "--only",
                                                               "actor"], random.randint(10, 99), log)
    assert proc.wait(timeout=120) == 2, log.read_text()
    message = log.read_text()
    assert f"node actor cannot start: the LeRobot {kind} base does not fit" in message
    assert "observation.state as (15,), the robot sim_panda_lift has (18,)" in message
    assert "its action has 6 elements, the robot sim_panda_lift's 7" in message

    base = save_tiny_lerobot_base(kind, tmp_path / kind, spec)
    stack = RobotStack(tmp_path, base, ["--max-episode-steps", "12"])
    try:
        stack.wait_for("30 transitions over 2 episodes", lambda: len(stack.transitions) >= 30
                       and len({t.episode for t in stack.transitions}) >= 2, 240)
    finally:
        stack.close()
    transitions = stack.transitions
    pairs = [(a, b) for a, b in zip(transitions, transitions[1:]) if (b.episode, b.step) == (a.episode, a.step + 1)]
    assert len(pairs) >= 20
    for a, b in pairs:
        np.testing.assert_array_equal(a.next_base_action, b.base_action)
    assert len({tuple(np.round(t.base_action, 6)) for t in transitions}) > len(transitions) // 2  # it acts on what it sees


@pytest.mark.slow
def _episode_both_ways(lift_demos, tmp_path, horizon: int, reward_model=None):
    """Scene seed 1's episode (or the next without a refused step) of a scripted base (Panda Lift, home pose; lockstep, exploration off)
    through the sim robot behind ROS 2 topics and through `rl train`'s in-process actor loop: (robot
    transitions, in-process transitions, the stack). With `reward_model` (a progress-success model
    directory) the reward comes from the two cameras: the reward server's readings on the robot path,
    the reward wrapper's in-process."""
    import gymnasium as gym

    from robo_reward.config.hardware import load_hardware_config, parse_hardware_config
    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.envs.limits import JointLimitGuard, JointLimits
    from robo_reward.envs.wrappers import RewardWrapper
    from robo_reward.rewards import RewardSpec, make_reward_source
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_sim_env
    from robo_reward.rl.scripted_policy import save_scripted_policy
    from robo_reward.runtime.actor import RuntimeActor

    base_dir = tmp_path / "scripted"
    save_scripted_policy(base_dir, read_env_spec(lift_demos), noise=0.0, seed=0)
    shipped = load_hardware_config("sim_panda_lift").model_dump()
    # the limiter engages from 30% of the velocity limits, so the executed actions depend on it; a step that
    # stalls past the 1 s stale limit (a first import in a fresh clone, under load) is refused — fail-safe,
    # tested elsewhere — and would leave a gap in the episode that the in-process run does not have
    changes = {"home": {**shipped["home"], "randomize": 0.0},
               "safety": {**shipped["safety"], "slow_from": 0.3, "stale_timeout_s": 10.0}}
    learned = ["--reward", "progress-success", "--reward-model", str(reward_model)] if reward_model else []
    stack = RobotStack(tmp_path, base_dir, ["--max-episode-steps", str(horizon), "--lockstep", "--no-explore", *learned],
                       changes, cameras=reward_model is not None)

    def steps_of(episode: int) -> list[int]:
        return [t.step for t in stack.transitions if t.episode == episode]

    def nth_episode(k: int) -> int | None:
        """The id of the reset manager's k-th episode (ids count on from its start time)."""
        return next((s["episode"] for s in stack.episodes if s["phase"] == "running" and s["number"] == k), None)

    # an episode in which the actor refused a step (a fail-safe: some input late past the stale limit on a
    # loaded machine; the actor logs why) has a gap the in-process run does not: the next episode is
    # compared instead, and the refusals are reported as a warning
    refusals = []
    try:
        for ordinal in (1, 2, 3):
            stack.wait_for(f"episode {ordinal}'s end", lambda: (e := nth_episode(ordinal)) is not None and any(
                t.episode == e and (t.terminated or t.truncated) for t in stack.transitions), 240)
            episode = nth_episode(ordinal)
            if steps_of(episode) == list(range(len(steps_of(episode)))):
                break
            refusals = [line for line in stack.log.read_text().splitlines() if "left out" in line]
        if reward_model is not None:
            stack.wait_for(f"the readings of episode {ordinal}'s frames", lambda: all(
                round(t.stamp, 6) in stack.rewards for t in stack.transitions if t.episode == episode), 60)
    finally:
        stack.close()
    robot = [t for t in stack.transitions if t.episode == episode]
    assert [t.step for t in robot] == list(range(len(robot))), \
        [line for line in stack.log.read_text().splitlines() if "left out" in line or "ERROR" in line]
    # the state the reset manager starts the episode from (where the reward server starts its stream) is
    # the actor's first observation: no homing target still in flight moved the robot past it
    starts = {s["start_stamp"] for s in stack.episodes if s["episode"] == episode and s["phase"] == "running"}
    assert len(starts) == 1 and abs(starts.pop() - robot[0].obs_stamp) < 1e-6, (starts, robot[0].obs_stamp)
    if refusals:
        warnings.warn(f"episodes before the {ordinal}-th had a refused step: {refusals}", stacklevel=1)

    class HomeAfterReset(gym.Wrapper):
        """What the reset manager does after the scene reset: the arm to its home pose."""

        def reset(self, **kwargs):
            return self.env.reset(seed=kwargs["seed"], options={"arm_joints": stack.config["home"]["positions"]})

    limits = JointLimits.from_hardware(parse_hardware_config(stack.config))
    spec = {"task": "lift", "robot": "Panda", "horizon": horizon}
    if reward_model is not None:  # the sim robot config's cameras, drawn as it draws them
        sim = stack.config["sim"]
        spec.update(cameras=[c["name"] for c in stack.config["cameras"]], image_size=[sim["image_size"]] * 2,
                    render=parse_hardware_config(stack.config).sim.render_settings().to_dict(),
                    terminate_on_success=False)
    env = HomeAfterReset(JointLimitGuard(make_sim_env(spec), limits))
    if reward_model is not None:
        env = RewardWrapper(env, make_reward_source(RewardSpec("progress-success", str(reward_model)), "cpu"))
    base, _ = load_policy(base_dir, "cpu")
    actor = RuntimeActor(None, 7)
    here = []
    # the sim robot's k-th scene reset draws seed k (its seed 0 is the scene it starts in)
    run_episode(env, base, lambda obs, base_action: actor.choose(obs, base_action, explore=False), here.append,
                episode=episode, seed=ordinal)
    return robot, here, stack


def test_one_seeded_episode_is_the_same_in_process_and_through_ros_topics(lift_demos, tmp_path) -> None:
    """The same scripted episode through `rl train`'s in-process actor loop and through the sim robot
    behind ROS 2 topics gives the same transitions — observations, base and executed actions, rewards,
    ends — and the same n-step targets."""
    pytest.importorskip("rclpy")
    from robo_reward.rewards.shaping import RewardRule

    # the time limit ends the episode a few steps before the lift succeeds (at step 49 here): whether the
    # cube is above the success height is a threshold the two paths' last bits may cross a step apart
    robot, here, _ = _episode_both_ways(lift_demos, tmp_path, horizon=40)
    assert len(robot) == len(here)
    assert any(np.abs(t.action - t.base_action).max() > 1e-3 for t in here)  # the limiter scaled commands
    for ours, theirs in zip(here, robot):
        for field in ("obs", "base_action", "action", "next_obs", "next_base_action"):
            np.testing.assert_allclose(getattr(theirs, field), getattr(ours, field), atol=1e-5, err_msg=field)
        assert (theirs.reward, theirs.terminated, theirs.truncated) == (ours.reward, ours.terminated, ours.truncated)
    items = []
    for transitions in (here, robot):
        buffer = NStepReplayBuffer(capacity=200, obs_dim=here[0].obs.size, act_dim=7, n_step=3, gamma=0.99)
        for t in transitions:
            buffer.add_transition(t, RewardRule(None)(*t.readings()))
        items.append({k: getattr(buffer, k)[:len(buffer)] for k in ("n_step_return", "discount", "next_obs")})
    for key in items[0]:
        np.testing.assert_allclose(items[1][key], items[0][key], atol=1e-5, err_msg=key)


def test_the_robot_link_hears_a_best_effort_driver_and_acts_first_on_the_episodes_start_state() -> None:
    """Arm and camera drivers commonly publish best effort; a RELIABLE subscription never matches such
    a publisher, and the actor would wait forever for a first observation. An episode said to start
    from a state newer than the link's newest reading gets no command until that state arrives (its
    reward stream starts there)."""
    rclpy = pytest.importorskip("rclpy")
    import random

    from geometry_msgs.msg import PoseStamped
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import JointState
    from std_msgs.msg import String

    from robo_reward.config.hardware import load_hardware_config
    from ros_nodes.common import EPISODE_TOPIC, LATCHED, json_msg, to_stamp
    from ros_nodes.robot_link import RosRobotLink

    config = load_hardware_config("sim_panda_lift")
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=random.randint(150, 200))
    try:
        actor = rclpy.create_node("actor_under_test", context=context)
        link = RosRobotLink(actor, config, trust_robot_success=True)
        driver = rclpy.create_node("best_effort_driver", context=context)
        best_effort = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
        joints = driver.create_publisher(JointState, config.topics.joint_states, best_effort)
        pose = driver.create_publisher(PoseStamped, config.topics.ee_poses[0], best_effort)
        episodes = driver.create_publisher(String, EPISODE_TOPIC, LATCHED)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(actor)
        executor.add_node(driver)
        names = [*config.joints.names, *config.gripper_joints]

        def publish_until(source_time, done, timeout_s: float = 20.0, pose_lag_s: float = 0.0):
            """Publish a state stamped `source_time()` (its pose `pose_lag_s` earlier) and spin until
            `done()` gives something."""
            result, end = None, time.monotonic() + timeout_s
            while result is None and time.monotonic() < end:
                stamp = source_time()
                js = JointState(name=names, position=[0.1] * len(names))
                js.header.stamp = to_stamp(stamp)
                ee = PoseStamped()
                ee.header.stamp = to_stamp(stamp - pose_lag_s)
                ee.pose.orientation.w = 1.0
                joints.publish(js)
                pose.publish(ee)
                for _ in range(5):
                    executor.spin_once(timeout_sec=0.02)
                result = done()
            return result

        reading = publish_until(time.time, lambda: link.wait_newer(float("-inf"), 0.0))
        assert reading is not None, "no observation from a best-effort driver"
        np.testing.assert_allclose(reading.obs["observation.state"][-7:], 0.1, rtol=1e-6)

        start = reading.stamp + 60.0  # a state the link has not heard yet
        episodes.publish(json_msg({"phase": "running", "episode": 1, "start_stamp": start}))
        end = time.monotonic() + 20
        while link.phase != "running" and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.02)
        assert link.gate() == (False, "waiting for the state the episode starts from")
        started = publish_until(lambda: start, lambda: link.wait_newer(reading.stamp, 0.0))
        assert started is not None and abs(started.stamp - start) < 1e-6
        assert link.gate()[1] != "waiting for the state the episode starts from"
        # a driver whose pose broadcaster stamps a few ms off its joint states (its own rate) is heard;
        # a pose a whole control period old is not this state's
        off = publish_until(lambda: start + 1.0, lambda: link.wait_newer(start, 0.0), pose_lag_s=0.004)
        assert off is not None and abs(off.stamp - (start + 1.0)) < 1e-6
        stale = publish_until(lambda: start + 2.0, lambda: link.wait_newer(off.stamp, 0.0), timeout_s=1.0,
                              pose_lag_s=config.control_period_s)
        assert stale is None
    finally:
        rclpy.shutdown(context=context)


def test_two_process_rl_train_holds_utd_and_resumes_with_the_trained_actor(lift_demos, lift_mlp_base, tmp_path):
    """`rl train` steps the env in a second process by default. It keeps the update-to-data ratio (one
    update per transition past learning_starts), and a resumed run acts with the checkpoint's actor
    from its very first step — never a fresh one (exploration noise is off here, so the executed
    action is exactly the restored policy's)."""
    import json

    import torch

    from robo_reward.cli import main
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.envs.limits import JointLimits, JointReading
    from robo_reward.rl.checkpoint import LEARNER_FILE, load_buffers, load_learner
    from robo_reward.rl.residual_policy import LATEST_CHECKPOINT

    run = tmp_path / "rl"
    common = ["--set", "learning_starts=40", "--set", "critic_warmup_updates=10", "--set", "utd_ratio=1",
              "--set", "batch_size=32", "--set", "actor_lr=1e-3", "--set", "exploration_noise=0.0",
              "--eval-episodes", "1", "--eval-every", "1000", "--checkpoint-every", "1000", "--quiet"]
    assert main(["rl", "train", "--base", str(lift_mlp_base), "--dataset", str(lift_demos), "--steps", "60",
                 "--out", str(run), *common]) == 0
    trained = load_learner(run / LATEST_CHECKPOINT, "cpu")
    assert trained.num_updates > 0
    before = len(load_buffers(run / LATEST_CHECKPOINT)["online"]["obs"])
    assert main(["rl", "train", "--out", str(run), "--steps", "120", "--resume", "--quiet"]) == 0
    online = load_buffers(run / LATEST_CHECKPOINT)["online"]
    first = {key: online[key][before] for key in ("obs", "base_action", "action")}
    # what went out is the restored policy's action through the joint limit guard, at the episode's
    # first state (arm joints: observation.state[11:18] after the eef pose and fingers, at rest)
    chosen = trained.act(first["obs"], first["base_action"])
    limits = JointLimits.from_hardware(sim_hardware_config("lift", "Panda"))
    expected = chosen.copy()
    expected[:6] = limits.limit(chosen[:6], JointReading(first["obs"][11:18], np.zeros(7)))
    np.testing.assert_allclose(first["action"], expected, atol=1e-4)
    assert not np.allclose(first["action"], np.clip(first["base_action"], -1, 1), atol=1e-4)  # residual is not 0
    metrics = json.loads((run / "metrics.json").read_text())
    env_steps = metrics["evals"][-1]["env_step"]
    assert sum(e["length"] for e in metrics["episodes"]) == env_steps >= 120
    final = torch.load(run / LATEST_CHECKPOINT / LEARNER_FILE, weights_only=True)["learner"]
    assert final["num_updates"] == env_steps - 40  # UTD 1 held, counted on across the resume


def test_robot_learner_rewards_by_its_rule_reports_the_ratio_it_reached_and_logs_episodes(lift_demos,
                                                                                          lift_mlp_base, tmp_path):
    """The robot learner skips updates while it is behind (a robot cannot wait) and says which
    update-to-data ratio it reached; its episodes go to metrics.json as `rl train`'s do; it resumes
    only with its own reward."""
    import json

    from robo_reward.rewards import RewardSpec
    from robo_reward.rl.residual import ResidualTD3Config
    from robo_reward.rl.transition import Transition
    from robo_reward.rl.checkpoint import REPLAY_FILE
    from robo_reward.rl.residual_policy import LATEST_CHECKPOINT
    from robo_reward.runtime.learner import INTERVENTION_CAPACITY, RuntimeLearner

    cfg = ResidualTD3Config(learning_starts=5, utd_ratio=2, batch_size=8, critic_warmup_updates=1)
    learner = RuntimeLearner.create(tmp_path / "run", lift_demos, lift_mlp_base, cfg, RewardSpec("sparse"))
    from robo_reward.data.lerobot_io import read_episode_seeds
    from robo_reward.rl.policies import policy_demo_seeds, read_policy_manifest

    assert policy_demo_seeds(read_policy_manifest(tmp_path / "run")) == read_episode_seeds(lift_demos)  # for eval
    obs_dim, act_dim = learner.learner.obs_dim, learner.learner.act_dim
    zeros = np.zeros(obs_dim, np.float32), np.zeros(act_dim, np.float32)
    for step in range(10):
        success = step == 9  # the operator marks success at the last step
        t = Transition(zeros[0], zeros[1], zeros[1], zeros[0], zeros[1], stamp=step + 1.0, obs_stamp=float(step),
                       episode=0, step=step, terminated=success, success=success, reward=float(success))
        learner.add(t, update=step < 7)
    assert learner.learner.num_updates == 4  # steps 6 and 7, two updates each
    assert learner.progress["skipped_updates"] == 6 and learner.utd_reached == pytest.approx(0.8)
    learner.checkpoint()
    (episode,) = json.loads((tmp_path / "run" / "metrics.json").read_text())["episodes"]
    assert episode["success"] and episode["length"] == 10 and episode["return"] == 1.0
    assert (tmp_path / "run" / "success_vs_steps.png").is_file()
    # a launch resumes the run only with the reward it learns from (a learned reward would otherwise
    # rate its transitions by rules and readings the run never had)
    resumed = RuntimeLearner.resume(tmp_path / "run", reward=RewardSpec("sparse"))
    assert resumed.progress["env_step"] == 10
    # its demonstrations stay however many interventions come; so do those of a run saved before that
    demonstrations = resumed.demo_buffer.capacity - INTERVENTION_CAPACITY
    assert resumed.demo_buffer.kept == demonstrations == learner.demo_buffer.kept > 0
    replay = tmp_path / "run" / LATEST_CHECKPOINT / REPLAY_FILE
    with np.load(replay) as saved:
        np.savez(replay, **{k: saved[k] for k in saved.files if k != "demo/kept"})
    assert RuntimeLearner.resume(tmp_path / "run", reward=RewardSpec("sparse")).demo_buffer.kept == demonstrations
    with pytest.raises(RoboRewardError, match=r"run learns from reward 'sparse'; this launch gives reward 'hop' "
                                              r"\(model .*progress_model\): launch it with the run's reward"):
        RuntimeLearner.resume(tmp_path / "run", reward=RewardSpec("hop", model=str(tmp_path / "progress_model")))


def test_rl_train_and_the_robot_learner_learn_the_same_from_the_same_transitions(lift_demos, lift_mlp_base, tmp_path):
    """One learning program: the transitions `rl train`'s actor process hands its learner, fed to the
    robot's learner, give the same rewards, buffers, weights and episode records (the episode's
    `success` aside: the simulator's check in `rl train`, the reward's call on a robot)."""
    import torch

    from robo_reward.rewards import RewardSpec
    from robo_reward.rl.loop import LoopConfig
    from robo_reward.rl.residual import ResidualTD3Config
    from robo_reward.rl.runs import create_residual_run
    from robo_reward.runtime.actor_process import use_actor_process
    from robo_reward.runtime.learner import RuntimeLearner

    cfg = ResidualTD3Config(learning_starts=30, utd_ratio=2, batch_size=16, critic_warmup_updates=10,
                            n_step=3, seed=5)
    trainer = create_residual_run(tmp_path / "sim", lift_demos, lift_mlp_base, cfg,
                                  LoopConfig(total_env_steps=10_000, seed=cfg.seed), local_env=False)
    use_actor_process(trainer, learner_threads=1)
    seen = []
    learn = trainer.learning.learn
    trainer.learning.learn = lambda t, env_step, update=True: (seen.append(t), learn(t, env_step, update))[1]
    try:
        for _ in range(2):
            trainer.run_episode()
    finally:
        trainer.actor.close()
    robot = RuntimeLearner.create(tmp_path / "robot", lift_demos, lift_mlp_base, cfg, RewardSpec("sparse"))
    rewards = [robot.add(t) for t in seen]
    assert trainer.learner.num_updates == robot.learner.num_updates == 2 * (len(seen) - 30) > 0
    assert [trainer.learning.rule(*t.readings()) for t in seen] == rewards
    assert len(robot.online_buffer) == len(trainer.online_buffer) > 0
    for key in ("obs", "action", "n_step_return", "discount", "next_obs"):
        size = len(trainer.online_buffer)
        np.testing.assert_array_equal(getattr(robot.online_buffer, key)[:size], getattr(trainer.online_buffer, key)[:size],
                                      err_msg=key)
    ours, theirs = trainer.learner.state_dict(), robot.learner.state_dict()
    for part in ("actor", "critic"):
        for name, tensor in ours[part].items():
            assert torch.equal(theirs[part][name], tensor), (part, name)
    sim_log, robot_log = trainer.state.episodes, robot.progress["episode_log"]
    assert len(sim_log) == len(robot_log) == 2
    for sim_episode, robot_episode in zip(sim_log, robot_log):
        assert robot_episode["success"] == robot_episode["reward_success"]
        for key in set(sim_episode) - {"episode", "success"}:
            assert robot_episode[key] == pytest.approx(sim_episode[key]), key


@pytest.mark.slow
def test_the_robot_learner_drops_bad_messages_with_their_reason_over_dds(lift_demos, lift_mlp_base, tmp_path):
    """A transition of the wrong length, with NaN or a stamp from the future, and a reward reading from
    the future: each is counted and dropped with its reason on the heartbeat; the learner keeps
    learning from the good ones."""
    pytest.importorskip("rclpy")
    import json
    import random

    from sensor_msgs.msg import JointState
    from std_msgs.msg import Float64MultiArray, String

    from robo_reward.rl.transition import Transition
    from robo_reward.runtime.codecs import encode_transition
    from ros_nodes.common import RELIABLE, named_values
    from ros_nodes.runner import BackgroundNode, interrupt_and_wait, ros_up_process

    domain = random.randint(10, 99)
    operator = BackgroundNode("test_bad_messages", domain)
    heartbeats: list[dict] = []
    operator.node.create_subscription(String, "/robo_reward/learner_heartbeat",
                                      lambda m: heartbeats.append(json.loads(m.data)), RELIABLE)
    transitions = operator.node.create_publisher(Float64MultiArray, "/robo_reward/transitions", RELIABLE)
    readings = operator.node.create_publisher(JointState, "/robo_reward/reward", RELIABLE)
    log = tmp_path / "learner.log"
    proc = ros_up_process("sim_panda_lift", ["--base", str(lift_mlp_base), "--dataset", str(lift_demos), "--run-dir",
                                             str(tmp_path / "run"), "--device", "cpu", "--only", "learner"],
                          domain, log)

    def wait_for(what, predicate, timeout_s):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end and not predicate():
            time.sleep(0.05)
        assert predicate(), f"timed out waiting for {what}; heartbeats {heartbeats[-1:]}; {log.read_text()[-2000:]}"

    def good(step: int, stamp: float) -> np.ndarray:
        zeros = np.zeros(30, np.float32), np.zeros(7, np.float32)  # Lift: state 18 + object 12
        return encode_transition(Transition(zeros[0], zeros[1], zeros[1], zeros[0], zeros[1], stamp=stamp,
                                            obs_stamp=stamp - 0.05, episode=0, step=step, reward=0.0))

    try:
        wait_for("the learner's heartbeat", lambda: heartbeats, 120)
        now = time.time()
        nan = good(0, now).copy()
        nan[-1] = np.nan
        future = good(1, now + 3600.0)
        for data in (good(0, now)[:-1], nan, future):
            transitions.publish(Float64MultiArray(data=data.tolist()))
        readings.publish(named_values(now + 3600.0, {"progress": 0.5, "reward": 0.0, "success": 0.0, "ok": 1.0}))
        for step in range(3):
            transitions.publish(Float64MultiArray(data=good(step, now + 0.05 * step).tolist()))
        wait_for("the good transitions learned", lambda: heartbeats[-1]["env_step"] >= 3, 30)
        wait_for("every bad message counted", lambda: sum(heartbeats[-1]["rejected"].values()) >= 4, 30)
        rejected = heartbeats[-1]["rejected"]
        assert any(k.startswith("transition: transition has") for k in rejected), rejected
        assert "transition: transition contains NaN or inf" in rejected
        assert rejected.get("transition: stamp from the future") == 1
        assert rejected.get("reward reading: stamp from the future") == 1
    finally:
        seconds = interrupt_and_wait(proc, 60)
        operator.close()
    assert proc.returncode == 0 and seconds < 5.0


def test_a_learned_reward_reads_the_same_in_process_and_through_ros_topics(lift_demos, camera_demos, tmp_path) -> None:
    """The closed loop's reward (hop progress + classifier success, `reward combine`) from the sim robot's
    two 64x64 cameras: the reward server's reading of every frame of a seeded episode is the reward
    wrapper's in-process — the same frames, the progress stream restarted at the episode's first frame,
    the server's batching changing nothing — and what the learner joins from them is the in-process
    episode: it ends at the frame whose reading calls success, although the robot took a step more
    before the call reached the reset manager."""
    pytest.importorskip("rclpy")
    from robo_reward.cli import main
    from robo_reward.data.episodes import load_episodes
    from robo_reward.rewards.shaping import RewardReading
    from robo_reward.runtime.learner import RewardJoin

    models = tmp_path / "models"
    first = next(i for i, e in enumerate(load_episodes(camera_demos)) if e.succeeded)
    common = ["--image-size", "32", "--quiet", "--device", "cpu"]
    assert main(["reward", "train", "hop", "--dataset", str(camera_demos), "--episodes", str(first), "--steps", "30",
                 "--out", str(models / "hop"), *common]) == 0
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--steps", "40",
                 "--out", str(models / "clf"), *common]) == 0
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(models / "clf"),
                 "--out", str(models / "both")]) == 0
    robot, here, stack = _episode_both_ways(lift_demos, tmp_path, horizon=30, reward_model=models / "both")
    assert here[-1].terminated and here[-1].success and len(here) < 30  # the model called success in-process
    # the same frames give the same readings (bench_reward_path: bit for bit over 2000 steps); a stream
    # started a frame late is off by ~0.15 from its first frame, one started a frame early (a homing
    # target still in flight) drifts by a few thousandths within a few steps
    tolerance = 1e-3
    start = stack.rewards[round(robot[0].obs_stamp, 6)]
    assert start["ok"] == 1.0 and abs(start["progress"] - here[0].progress) < tolerance
    for step, (ours, t) in enumerate(zip(here, robot)):
        theirs = stack.rewards[round(t.stamp, 6)]
        assert theirs["ok"] == 1.0, (step, theirs)
        np.testing.assert_allclose([theirs["progress"], theirs["reward"]], [ours.next_progress, ours.reward],
                                   atol=tolerance, err_msg=f"step {step}")
        assert bool(theirs["success"]) == ours.success, step
    join = RewardJoin(tolerance_s=0.02)
    for stamp, r in stack.rewards.items():
        join.add_reading(stamp, RewardReading(r["progress"], bool(r["success"]), r["reward"]))
    for t in robot:
        join.add_transition(t, 0.0)
    learned = join.ready(0.0)
    assert len(learned) == len(here) and join.after_success == len(robot) - len(here)
    for step, (ours, theirs) in enumerate(zip(here, learned)):
        assert (theirs.terminated, theirs.truncated, theirs.success) == (ours.terminated, ours.truncated, ours.success)
        np.testing.assert_allclose([theirs.progress, theirs.next_progress, theirs.reward],
                                   [ours.progress, ours.next_progress, ours.reward], atol=tolerance,
                                   err_msg=f"step {step}")
