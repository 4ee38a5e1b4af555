"""Reset manager and episode supervisor: between episodes the robot goes to a (randomized) home
pose by interpolated motion under the limits; an episode starts only when safety is OK, home is
reached and — on real hardware — an operator confirmed. Episodes end at the time limit, on
success (reward model or the robot's own signal), or when an operator marks the outcome.

Services: ~/reset, ~/confirm, ~/start (Trigger); ~/mark_outcome (SetBool: True = success).
Publishes the episode status (JSON) on /robo_reward/episode and joint targets on the reset topic.
"""

from __future__ import annotations

import math
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger

from robo_reward.safety.monitor import JointStateError, joint_vector
from robo_reward.safety.reset import Phase, ResetManager, restart_safe_first_episode
from ros_nodes.common import (
    EPISODE_TOPIC,
    LATCHED,
    RELIABLE,
    REWARD_TOPIC,
    SAFETY_TOPIC,
    SENSOR_SUB,
    SUCCESS_TOPIC,
    StackNode,
    declare,
    episode_defaults,
    hardware,
    json_msg,
    read_named_values,
    to_sec,
)

STALL_FACTOR = 20  # an episode also ends after this many times its step budget in control periods


class ResetManagerNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "reset_manager"), **kwargs)
        self.config = cfg = hardware(self)
        self.max_steps = int(declare(self, "max_episode_steps", episode_defaults(cfg)[0]))
        self.auto_cycle = bool(declare(self, "auto_cycle", True))
        self.success_source = str(declare(self, "success_source", "robot"))  # robot | reward | operator
        scene_service = str(declare(self, "scene_reset_service", ""))
        # simulation only: after a safety stop, act as the operator would (put the scene back, then
        # reset the monitor); on hardware a person does this after checking the robot
        self.auto_recover = bool(declare(self, "auto_recover", False))
        self.safety_reset = self.create_client(Trigger, str(declare(self, "safety_reset_service",
                                                                   "/safety_monitor/reset")))
        self.next_recovery = 0.0
        # a lockstep sim steps once per target: wait for each target's answer (a robot streams them)
        # 0: number episodes from this start's time (`restart_safe_first_episode`)
        first_episode = int(declare(self, "first_episode", 0)) or restart_safe_first_episode(time.time())
        self.manager = ResetManager(cfg, seed=int(declare(self, "seed", 0)), first_episode=first_episode,
                                    wait_for_answer=bool(declare(self, "wait_for_answer", False)))
        self.q: np.ndarray | None = None
        self.q_stamp: float | None = None  # source time of the joint state `q` came from
        # source time of the state the running episode started from: readings of earlier frames (the
        # reset motion's) neither end it nor start its reward stream
        self.start_stamp: float | None = None
        self.safety_ok = self.safety_latched = False
        self.success = False
        self.step = 0  # commands sent in this episode
        self.stamp_at_command = -math.inf  # the newest state's source time when the last command arrived
        self.ticks = 0  # control periods since it started
        self.scene_client = self.create_client(Trigger, scene_service) if scene_service else None
        self.scene_pending = None
        self.pub_episode = self.create_publisher(String, EPISODE_TOPIC, LATCHED)
        self.pub_target = self.create_publisher(Float64MultiArray, cfg.command.reset_topic, RELIABLE)
        self.create_subscription(JointState, cfg.topics.joint_states, self.on_joints, SENSOR_SUB)
        self.create_subscription(DiagnosticStatus, SAFETY_TOPIC, self.on_safety, LATCHED)
        self.create_subscription(JointState, SUCCESS_TOPIC, self.on_robot_success, SENSOR_SUB)
        self.create_subscription(JointState, REWARD_TOPIC, self.on_reward, RELIABLE)
        self.create_subscription(Float64MultiArray, cfg.command.topic, self.on_command, RELIABLE)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.create_service(Trigger, "~/confirm", self.on_confirm)
        self.create_service(Trigger, "~/start", self.on_start)
        self.create_service(SetBool, "~/mark_outcome", self.on_mark)
        self.create_timer(cfg.control_period_s, self.on_tick)
        self._published = None
        self.outcome: dict | None = None
        self.joint_messages = 0
        self.joints_seen_at_scene: int | None = None

    # ------------------------------------------------------------------ inputs
    def on_joints(self, msg: JointState) -> None:
        self.joint_messages += 1
        try:
            self.q = joint_vector(self.config.joints.names, msg.name, msg.position)
            self.q_stamp = to_sec(msg.header.stamp)
        except JointStateError:
            self.q = None  # the safety monitor reports why; no motion on unreadable state

    def on_safety(self, msg: DiagnosticStatus) -> None:
        self.safety_ok = msg.level == DiagnosticStatus.OK
        self.safety_latched = msg.level == DiagnosticStatus.ERROR

    def on_command(self, msg: Float64MultiArray) -> None:
        """Episode length counts the commands the robot was sent (control steps actually taken)."""
        if self.manager.phase == Phase.RUNNING:
            self.step += 1
            self.stamp_at_command = -math.inf if self.q_stamp is None else self.q_stamp

    def on_robot_success(self, msg: JointState) -> None:
        if self.success_source == "robot":
            self.success = self.success or read_named_values(msg).get("success", 0.0) > 0.5

    def on_reward(self, msg: JointState) -> None:
        if self.success_source == "reward" and self.manager.phase == Phase.RUNNING and (
                self.start_stamp is None or to_sec(msg.header.stamp) >= self.start_stamp - 1e-6):
            self.success = self.success or read_named_values(msg).get("success", 0.0) > 0.5

    # ------------------------------------------------------------------ services
    def on_reset(self, request, response):
        response.success, response.message = self.begin_reset()
        return response

    def on_confirm(self, request, response):
        response.success, response.message = self.manager.confirm(self.q, self.safety_ok)
        self.publish()
        return response

    def on_start(self, request, response):
        response.success, response.message = self.start()
        return response

    def on_mark(self, request, response):
        if self.manager.phase != Phase.RUNNING:
            response.success, response.message = False, "no episode running"
        else:
            self.end(bool(request.data), "operator")
            response.success, response.message = True, f"episode marked {'success' if request.data else 'failure'}"
        return response

    # ------------------------------------------------------------------ the cycle
    def begin_reset(self) -> tuple[bool, str]:
        """Scene reset first (sim: new object placement), then the motion home from where the robot
        is after it — planned only once a joint state newer than the scene reset has arrived."""
        if self.scene_pending is not None:
            return False, "a scene reset is in progress"
        if self.scene_client is not None and self.manager.phase != Phase.RUNNING and self.safety_ok:
            if not self.scene_client.service_is_ready():
                return False, "scene reset service not available"
            self.scene_pending = self.scene_client.call_async(Trigger.Request())
            self.joints_seen_at_scene = None
            return True, "scene reset requested"
        ok, reason = self.manager.begin_reset(self.q, self.safety_ok, self.now())
        self.publish()
        return ok, reason

    def start(self) -> tuple[bool, str]:
        ok, reason = self.manager.start_episode(self.q, self.safety_ok)
        if ok:
            self.step, self.ticks, self.success, self.outcome = 0, 0, False, None
            self.start_stamp = self.q_stamp
        self.publish()
        return ok, reason

    def outcome_of_episode(self, success: bool, source: str) -> dict:
        """How the running or last episode ended, as the status carries it."""
        m = self.manager
        return {"episode": m.episode, "number": m.number, "success": success, "source": source, "steps": self.step}

    def end(self, success: bool, source: str) -> None:
        self.manager.end_episode(success, source)
        self.outcome = self.outcome_of_episode(success, source)
        self.get_logger().info(f"episode {self.manager.episode} ended: {self.outcome}")
        self.publish()

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_tick(self) -> None:
        m = self.manager
        if self.scene_pending is not None:  # wait for the scene, then for a joint state from after it
            if not self.scene_pending.done():
                return
            if self.joints_seen_at_scene is None:
                self.joints_seen_at_scene = self.joint_messages
                result = None if self.scene_pending.exception() else self.scene_pending.result()
                if result is None or not result.success:
                    self.get_logger().error("scene reset failed ("
                                            f"{'no answer' if result is None else result.message}); the next "
                                            "episode starts from the scene as the last one left it")
            if self.joint_messages == self.joints_seen_at_scene:
                return
            self.scene_pending = None
            m.begin_reset(self.q, self.safety_ok, self.now())
        was_running = m.phase == Phase.RUNNING
        target = m.next_target(self.q, -math.inf if self.q_stamp is None else self.q_stamp, self.safety_ok,
                               self.now())
        if was_running and m.phase == Phase.FAULT:
            self.outcome = self.outcome_of_episode(False, "safety")
            self.get_logger().error(f"episode {m.episode} (number {m.number}) stopped by the safety monitor")
        if target is not None:
            self.pub_target.publish(Float64MultiArray(data=[float(x) for x in target]))
        if m.phase == Phase.RUNNING:
            self.ticks += 1
            if self.success and self.success_source != "operator":
                self.end(True, self.success_source)
            elif self.step >= self.max_steps and self.q_stamp is not None and self.q_stamp > self.stamp_at_command:
                # ended only once a state newer than the last command is in: in lockstep, a scene reset
                # requested before the robot answered that command would become the last step's outcome
                self.end(False, "time_limit")
            elif self.ticks >= STALL_FACTOR * self.max_steps:  # commands stopped coming: do not wait forever
                self.end(False, "no_commands")
        elif self.auto_cycle and m.phase in (Phase.IDLE, Phase.FAULT) and self.safety_ok and self.q is not None:
            self.begin_reset()
        elif self.auto_cycle and m.phase == Phase.READY:
            self.start()
        elif self.auto_recover and m.phase in (Phase.IDLE, Phase.FAULT) and self.safety_latched \
                and self.now() >= self.next_recovery:
            self.next_recovery = self.now() + 1.0
            if self.scene_client is not None and self.scene_client.service_is_ready():
                self.scene_client.call_async(Trigger.Request())
            if self.safety_reset.service_is_ready():
                self.safety_reset.call_async(Trigger.Request())
        self.publish()

    def publish(self) -> None:
        m = self.manager
        status = {"phase": m.phase.value, "episode": m.episode, "number": m.number, "step": self.step,
                  "reason": m.reason, "outcome": self.outcome, "start_stamp": self.start_stamp}
        if status != self._published or m.phase == Phase.RUNNING:
            if self._published is None or self._published["phase"] != status["phase"]:
                self.get_logger().info(f"episode {m.episode} (number {m.number}): {m.phase.value} ({m.reason})")
            self._published = status
            self.pub_episode.publish(json_msg(status))


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(ResetManagerNode, args)


if __name__ == "__main__":
    main()
