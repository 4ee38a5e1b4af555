"""Actor: base policy + residual at the control rate. A command goes out only while the safety
monitor reports OK, an episode runs and every observation input is fresh; each executed step goes
to the learner as a transition. New weights from the learner are swapped in atomically; when the
learner goes quiet the actor keeps running on its current weights, reports the lost link, and
picks the learner up again as soon as it publishes (DDS rediscovers it)."""

from __future__ import annotations

import json

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String, UInt8MultiArray

from robo_reward.envs.observations import flat_state
from robo_reward.errors import RoboRewardError
from robo_reward.runtime.actor import (
    CommandGate,
    RuntimeActor,
    observation_from_parts,
    proprio_state,
)
from robo_reward.runtime.codecs import MessageError, Transition, encode_transition
from robo_reward.safety.monitor import JointStateError
from ros_nodes.common import (
    ACTOR_STATUS_TOPIC,
    EPISODE_TOPIC,
    HEARTBEAT_TOPIC,
    INTERVENTION_TOPIC,
    LATCHED,
    OPERATOR_COMMAND_TOPIC,
    RELIABLE,
    SAFETY_TOPIC,
    SENSOR,
    SUCCESS_TOPIC,
    TRANSITIONS_TOPIC,
    WEIGHTS_TOPIC,
    declare,
    hardware,
    json_msg,
    monotonic,
    pose_parts,
    to_sec,
)


class ActorNode(Node):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "actor"), **kwargs)
        from robo_reward.rl.policies import load_policy

        self.config = cfg = hardware(self)
        base_dir = str(declare(self, "base_policy", ""))
        if not base_dir:
            raise RoboRewardError("actor: parameter base_policy (a policy directory) is required")
        self.explore = bool(declare(self, "explore", True))
        self.link_timeout = float(declare(self, "learner_timeout_s", 3.0))
        base, manifest = load_policy(base_dir, str(declare(self, "device", "cpu")))
        self.actor = RuntimeActor(base, None, cfg.command.action_dim, seed=int(declare(self, "seed", 0)))
        self.gate = CommandGate(cfg.safety.stale_timeout_s)
        self.state: dict = {}
        self.times: dict[str, float] = {}
        self.safety_ok, self.episode = False, {"phase": "idle", "episode": 0}
        self.robot_success = False
        self.intervention, self.operator_command = False, None
        # the last command's (obs, base action, action, episode, intervention, state stamp)
        self.pending: tuple | None = None
        self.last_link = float("-inf")
        self.gate_reason = "starting"
        self.pub_cmd = self.create_publisher(Float64MultiArray, cfg.command.topic, RELIABLE)
        self.pub_transition = self.create_publisher(Float64MultiArray, TRANSITIONS_TOPIC, RELIABLE)
        self.pub_status = self.create_publisher(String, ACTOR_STATUS_TOPIC, LATCHED)
        self.create_subscription(JointState, cfg.topics.joint_states, self.on_joints, SENSOR)
        for i, topic in enumerate(cfg.topics.ee_poses):
            self.create_subscription(PoseStamped, topic, lambda m, i=i: self.on_pose(m, i), SENSOR)
        self.create_subscription(Float64MultiArray, cfg.topics.object_state, self.on_object, SENSOR)
        self.create_subscription(Bool, SUCCESS_TOPIC, self.on_success, SENSOR)
        self.create_subscription(DiagnosticStatus, SAFETY_TOPIC, self.on_safety, LATCHED)
        self.create_subscription(String, EPISODE_TOPIC, self.on_episode, LATCHED)
        self.create_subscription(UInt8MultiArray, WEIGHTS_TOPIC, self.on_weights, LATCHED)
        self.create_subscription(String, HEARTBEAT_TOPIC, self.on_heartbeat, RELIABLE)
        self.create_subscription(Bool, INTERVENTION_TOPIC, self.on_intervention, RELIABLE)
        self.create_subscription(Float64MultiArray, OPERATOR_COMMAND_TOPIC, self.on_operator_command, RELIABLE)
        self.create_timer(cfg.control_period_s, self.on_tick)
        self.create_timer(0.5, self.publish_status)
        self.base_kind = manifest.get("kind")

    # ------------------------------------------------------------------ inputs
    def on_joints(self, msg: JointState) -> None:
        self.state["joints"] = (list(msg.name), list(msg.position), to_sec(msg.header.stamp))
        self.times["joints"] = monotonic()

    def on_pose(self, msg: PoseStamped, index: int) -> None:
        self.state[f"ee/{index}"] = pose_parts(msg)
        self.times[f"ee/{index}"] = monotonic()

    def on_object(self, msg: Float64MultiArray) -> None:
        self.state["object"] = np.asarray(msg.data, np.float32)
        self.times["object"] = monotonic()

    def on_success(self, msg: Bool) -> None:
        self.robot_success = bool(msg.data)

    def on_safety(self, msg: DiagnosticStatus) -> None:
        self.safety_ok = msg.level == DiagnosticStatus.OK

    def on_episode(self, msg: String) -> None:
        self.episode = json.loads(msg.data)

    def on_weights(self, msg: UInt8MultiArray) -> None:
        self.last_link = monotonic()
        try:
            version = self.actor.load_weights(bytes(msg.data))
            self.get_logger().info(f"actor weights version {version} in use")
        except MessageError as exc:
            self.get_logger().warning(f"actor weights ignored: {exc}")

    def on_heartbeat(self, msg: String) -> None:
        self.last_link = monotonic()

    def on_intervention(self, msg: Bool) -> None:
        self.intervention = bool(msg.data)

    def on_operator_command(self, msg: Float64MultiArray) -> None:
        self.operator_command = (np.asarray(msg.data, np.float32), monotonic())

    # ------------------------------------------------------------------ control
    def observation(self) -> tuple[dict, float] | None:
        if "joints" not in self.state or any(f"ee/{i}" not in self.state
                                             for i in range(len(self.config.topics.ee_poses))):
            return None
        names, positions, stamp = self.state["joints"]
        poses = [self.state[f"ee/{i}"] for i in range(len(self.config.topics.ee_poses))]
        state = proprio_state(self.config, names, positions, poses)
        return observation_from_parts(state, self.state.get("object")), stamp

    def on_tick(self) -> None:
        now = monotonic()
        running = self.episode.get("phase") == "running"
        try:
            current = self.observation()
        except JointStateError as exc:
            current, self.gate_reason = None, f"unreadable joint state: {exc}"
        if self.pending is not None and current is not None:
            if current[1] == self.pending[-1]:
                return  # the robot has not reported the result of the last command yet
            if current[1] < self.pending[-1]:  # the state clock went back (a bad stamp): drop, do not wait
                self.pending = None
            else:
                self.finish_transition(current, running)
        ok, self.gate_reason = self.gate.check(now, self.safety_ok, running, self.times) if current is not None \
            else (False, self.gate_reason if "unreadable" in self.gate_reason else "no observation yet")
        if not ok:
            return
        obs, stamp = current
        try:
            base_action, action = self.actor.act(obs, self.explore)
        except RoboRewardError as exc:  # a NaN or malformed action never reaches the robot
            self.gate_reason = str(exc)
            self.get_logger().error(f"no command: {exc}")
            return
        intervening = self.intervention and self.operator_command is not None and \
            now - self.operator_command[1] <= self.config.safety.stale_timeout_s
        if intervening:
            action = np.clip(self.operator_command[0], -1, 1).astype(np.float32)
        self.pub_cmd.publish(Float64MultiArray(data=[float(a) for a in action]))
        self.pending = (obs, base_action, action, self.episode.get("episode", 0), intervening, stamp)

    def finish_transition(self, current: tuple[dict, float], running: bool) -> None:
        """Send (obs, action) -> the observation after it; the episode's end sets the flags."""
        obs, base_action, action, episode, intervening, _ = self.pending
        next_obs, stamp = current
        ended = not running or self.episode.get("episode") != episode
        outcome = self.episode.get("outcome") or {}
        success = ended and outcome.get("episode") == episode and bool(outcome.get("success"))
        try:
            next_base = self.actor.act(next_obs, explore=False)[0]
        except RoboRewardError:
            next_base = base_action
        t = Transition(flat_state(obs), base_action, action, flat_state(next_obs), next_base, stamp=stamp,
                       episode=episode, terminated=success, truncated=ended and not success,
                       intervention=intervening, env_reward=float(self.robot_success))
        self.pub_transition.publish(Float64MultiArray(data=encode_transition(t).tolist()))
        self.pending = None

    def publish_status(self) -> None:
        link = "ok" if monotonic() - self.last_link <= self.link_timeout else "lost"
        self.pub_status.publish(json_msg({"weights_version": self.actor.version, "learner_link": link,
                                          "gate": self.gate_reason, "explore": self.explore}))


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(ActorNode, args)


if __name__ == "__main__":
    main()
