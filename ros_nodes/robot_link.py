"""The robot env's transport over ROS 2 topics (robo_reward.envs.robot.RobotLink): joint states,
end-effector poses and object state in; commands out through the gate; safety, episode phase and
success from the safety monitor, the reset manager and the robot; the operator's intervention."""

from __future__ import annotations

import json
import threading

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String

from robo_reward.config.hardware import HardwareConfig
from robo_reward.envs.robot import EpisodeStatus, LinkClosed, RobotReading
from robo_reward.runtime.actor import CommandGate, observation_from_parts, proprio_state
from robo_reward.safety.monitor import JointStateError
from ros_nodes.common import (
    EPISODE_TOPIC,
    INTERVENTION_TOPIC,
    LATCHED,
    OBSERVATIONS_TOPIC,
    OPERATOR_COMMAND_TOPIC,
    RELIABLE,
    SAFETY_TOPIC,
    SENSOR_SUB,
    SUCCESS_TOPIC,
    monotonic,
    named_values,
    pose_parts,
    read_named_values,
    to_sec,
)


class RosRobotLink:
    def __init__(self, node: Node, config: HardwareConfig, trust_robot_success: bool):
        """`trust_robot_success`: the robot's own success signal ends episodes (a simulator's check);
        otherwise only the reset manager's outcome does (operator mark, success detector)."""
        self.node, self.config = node, config
        self.trust_robot_success = trust_robot_success
        self.control_period_s = config.control_period_s
        self.observation_timeout_s = config.safety.stale_timeout_s
        self.gate_check = CommandGate(config.safety.stale_timeout_s)
        self.changed = threading.Condition()
        self.closed = False
        self.joints: tuple | None = None  # (names, positions, velocities, stamp)
        self.poses: dict[int, tuple] = {}  # end effector -> ((position, quaternion), stamp)
        self.object: tuple[np.ndarray, float] | None = None  # (values, stamp)
        self.success_stamp = -np.inf  # stamp of the robot's last success message
        self.times: dict[str, float] = {}  # receipt time per input, for the freshness gate
        self.safety_ok = False
        self.phase, self.episode = "idle", 0
        self.start_stamp = -np.inf  # source time of the state the running episode starts from
        self.outcomes: dict[int, dict] = {}  # episode -> the reset manager's outcome
        self.robot_success = False  # the robot's own success signal, since this episode started
        self.intervention, self.operator = False, None
        self.reason = "starting"
        self.pub_cmd = node.create_publisher(Float64MultiArray, config.command.topic, RELIABLE)
        self.pub_observed = node.create_publisher(JointState, OBSERVATIONS_TOPIC, RELIABLE)
        node.create_subscription(JointState, config.topics.joint_states, self.on_joints, SENSOR_SUB)
        for i, topic in enumerate(config.topics.ee_poses):
            node.create_subscription(PoseStamped, topic, lambda m, i=i: self.on_pose(m, i), SENSOR_SUB)
        node.create_subscription(JointState, config.topics.object_state, self.on_object, SENSOR_SUB)
        node.create_subscription(JointState, SUCCESS_TOPIC, self.on_success, SENSOR_SUB)
        node.create_subscription(DiagnosticStatus, SAFETY_TOPIC, self.on_safety, LATCHED)
        node.create_subscription(String, EPISODE_TOPIC, self.on_episode, LATCHED)
        node.create_subscription(Bool, INTERVENTION_TOPIC, self.on_intervention, RELIABLE)
        node.create_subscription(Float64MultiArray, OPERATOR_COMMAND_TOPIC, self.on_operator_command, RELIABLE)

    # ------------------------------------------------------------------ callbacks (executor threads)
    def _update(self, key: str | None, **values) -> None:
        with self.changed:
            for name, value in values.items():
                setattr(self, name, value)
            if key:
                self.times[key] = monotonic()
            self.changed.notify_all()

    def on_joints(self, msg: JointState) -> None:
        self._update("joints", joints=(list(msg.name), list(msg.position), list(msg.velocity),
                                       to_sec(msg.header.stamp)))

    def on_pose(self, msg: PoseStamped, index: int) -> None:
        with self.changed:
            self.poses[index] = (pose_parts(msg), to_sec(msg.header.stamp))
            self.times[f"ee/{index}"] = monotonic()
            self.changed.notify_all()

    def on_object(self, msg: JointState) -> None:
        self._update("object", object=(np.asarray(msg.position, np.float32), to_sec(msg.header.stamp)))

    def on_success(self, msg: JointState) -> None:
        if self.trust_robot_success:
            success = read_named_values(msg).get("success", 0.0) > 0.5
            self._update(None, robot_success=self.robot_success or success, success_stamp=to_sec(msg.header.stamp))

    def on_safety(self, msg: DiagnosticStatus) -> None:
        self._update(None, safety_ok=msg.level == DiagnosticStatus.OK)

    def on_episode(self, msg: String) -> None:
        status = json.loads(msg.data)
        with self.changed:
            episode = int(status.get("episode", 0))
            if episode != self.episode:
                self.robot_success = False
            self.phase, self.episode = str(status.get("phase")), episode
            start = status.get("start_stamp")
            self.start_stamp = -np.inf if start is None else float(start)
            outcome = status.get("outcome")
            if outcome:
                self.outcomes[int(outcome["episode"])] = outcome
            self.changed.notify_all()

    def on_intervention(self, msg: Bool) -> None:
        self._update(None, intervention=bool(msg.data))

    def on_operator_command(self, msg: Float64MultiArray) -> None:
        self._update(None, operator=(np.asarray(msg.data, np.float32), monotonic()))

    # ------------------------------------------------------------------ RobotLink (the actor loop's thread)
    def close(self) -> None:
        self._update(None, closed=True)

    def _reading(self) -> RobotReading | None:
        """The newest complete observation: joints, every end-effector pose within half a control
        period of them, and — once they stream — object state and the robot's success call from no
        earlier than half a period before them (a simulator stamps all of them alike; a real driver's
        pose broadcaster and perception run at their own rates)."""
        if self.joints is None or len(self.poses) < len(self.config.topics.ee_poses):
            return None
        names, positions, velocities, stamp = self.joints
        if any(abs(pose_stamp - stamp) > self.control_period_s / 2 for _, pose_stamp in self.poses.values()):
            return None  # the rest of this state has not arrived yet
        oldest = stamp - self.control_period_s / 2
        if (self.object is not None and self.object[1] < oldest) or \
                (np.isfinite(self.success_stamp) and self.success_stamp < oldest):
            return None
        try:
            state = proprio_state(self.config, names, positions, [self.poses[i][0] for i in sorted(self.poses)])
        except JointStateError as exc:
            self.reason = f"unreadable joint state: {exc}"
            return None
        return RobotReading(observation_from_parts(state, None if self.object is None else self.object[0]), stamp,
                            {"names": names, "positions": positions, "velocities": velocities or None})

    def _gate(self) -> tuple[bool, str]:
        reading = self._reading()
        if reading is None:
            return False, self.reason if "unreadable" in self.reason else "no observation yet"
        if reading.stamp < self.start_stamp - 1e-6:  # an episode's first command acts on its first state
            return False, "waiting for the state the episode starts from"
        return self.gate_check.check(monotonic(), self.safety_ok, self.phase == "running", self.times)

    def _wait(self, predicate, timeout_s: float):
        with self.changed:
            self.changed.wait_for(lambda: self.closed or predicate(), timeout=timeout_s)
            if self.closed:
                raise LinkClosed()
            return predicate()

    def gate(self) -> tuple[bool, str]:
        with self.changed:
            ok, self.reason = self._gate()
            return ok, self.reason

    def wait_ready(self, timeout_s: float) -> tuple[RobotReading, EpisodeStatus] | None:
        if not self._wait(lambda: self._gate()[0], timeout_s):
            self.gate()  # records why not, for the status topic
            return None
        with self.changed:
            return self._reading(), self._status(self.episode)

    def send(self, action: np.ndarray) -> None:
        self.pub_cmd.publish(Float64MultiArray(data=[float(a) for a in action]))

    def observed(self, stamp: float, episode: int) -> None:
        self.pub_observed.publish(named_values(stamp, {"episode": episode}))

    def wait_newer(self, stamp: float, timeout_s: float) -> RobotReading | None:
        def newer():
            reading = self._reading()
            return reading if reading is not None and reading.stamp > stamp else None
        return self._wait(newer, timeout_s)

    def _status(self, episode: int) -> EpisodeStatus:
        outcome = self.outcomes.get(episode)
        current = episode == self.episode
        success = bool(outcome and outcome.get("success")) or (current and self.robot_success)
        return EpisodeStatus(running=current and self.phase == "running", episode=episode,
                             ended=outcome is not None or not current, success=success,
                             reason=str(outcome.get("source")) if outcome else f"episode is {self.phase}")

    def episode_status(self, episode: int, wait_s: float = 0.0) -> EpisodeStatus:
        if wait_s > 0:
            self._wait(lambda: self._status(episode).ended, wait_s)
        with self.changed:
            return self._status(episode)

    def operator_command(self) -> np.ndarray | None:
        with self.changed:
            if not self.intervention or self.operator is None:
                return None
            command, received = self.operator
            return command if monotonic() - received <= self.config.safety.stale_timeout_s else None
