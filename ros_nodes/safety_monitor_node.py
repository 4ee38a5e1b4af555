"""Safety monitor: joint position/velocity limits, workspace box, command step change, wrench,
stale-data watchdog, e-stop. A violation latches (commands stop) until ~/reset succeeds; the
status goes out at the control rate and at once on a violation, and every violation is logged."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, WrenchStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robo_reward.safety.monitor import SafetyMonitor
from ros_nodes.common import (
    LATCHED,
    RELIABLE,
    SAFETY_TOPIC,
    SENSOR_SUB,
    StackNode,
    hardware,
    monotonic,
    safety_status,
    to_sec,
)


class SafetyMonitorNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "safety_monitor"), **kwargs)
        self.config = cfg = hardware(self)
        self.monitor = SafetyMonitor(cfg)
        self.pub = self.create_publisher(DiagnosticStatus, SAFETY_TOPIC, LATCHED)
        self.create_subscription(JointState, cfg.topics.joint_states, self.on_joints, SENSOR_SUB)
        for i, topic in enumerate(cfg.topics.ee_poses):
            self.create_subscription(PoseStamped, topic, lambda m, i=i: self.on_pose(m, i), SENSOR_SUB)
        self.create_subscription(WrenchStamped, cfg.topics.wrench, self.on_wrench, SENSOR_SUB)
        self.create_subscription(Bool, cfg.topics.estop, self.on_estop, RELIABLE)
        self.create_subscription(Float64MultiArray, cfg.command.topic, self.on_command, RELIABLE)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.create_timer(cfg.control_period_s, self.on_tick)
        self.last_command_time = float("-inf")

    def _after(self, violation) -> None:
        if violation is not None:
            self.get_logger().error(f"SAFETY STOP: {violation}")
            self.publish()

    def on_joints(self, msg: JointState) -> None:
        self._after(self.monitor.update_joints(to_sec(msg.header.stamp), msg.name, msg.position,
                                               msg.velocity or None, monotonic()))

    def on_pose(self, msg: PoseStamped, index: int) -> None:
        p = msg.pose.position
        self._after(self.monitor.update_ee_position(to_sec(msg.header.stamp), (p.x, p.y, p.z), monotonic(), index))

    def on_wrench(self, msg: WrenchStamped) -> None:
        f, t = msg.wrench.force, msg.wrench.torque
        self._after(self.monitor.update_wrench(to_sec(msg.header.stamp), (f.x, f.y, f.z), (t.x, t.y, t.z),
                                               monotonic()))

    def on_estop(self, msg: Bool) -> None:
        self._after(self.monitor.set_estop(msg.data, monotonic()))

    def on_command(self, msg: Float64MultiArray) -> None:
        now = monotonic()
        if now - self.last_command_time > 2 * self.config.control_period_s:
            self.monitor.end_command_stream()  # commands paused (reset, stop): a new stream starts
        self.last_command_time = now
        self._after(self.monitor.check_command(msg.data, now))

    def on_reset(self, request, response):
        response.success, response.message = self.monitor.reset(monotonic())
        self.get_logger().info(f"reset requested: {response.message}")
        self.publish()
        return response

    def on_tick(self) -> None:
        self._after(self.monitor.tick(monotonic()))
        self.publish()

    def publish(self) -> None:
        self.pub.publish(safety_status(self.monitor.ok, self.monitor.violation is not None, self.monitor.status, {"events": len(self.monitor.events)}))


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(SafetyMonitorNode, args)


if __name__ == "__main__":
    main()
