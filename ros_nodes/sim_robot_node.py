"""Sim robot: a sim/ environment behind the topics a real driver exposes, so the whole stack
rehearses sim-to-real with no code change.

Publishes /joint_states, one PoseStamped per end effector, a WrenchStamped, the object state
(what perception would publish), each configured camera, and the simulator's success check.
Follows normalized-action commands (one physics step each, lockstep with the actor) and
joint-position reset commands; without commands it holds position at the control rate.
Service ~/reset_scene re-draws the object placement (what an operator does on real hardware).
"""

from __future__ import annotations

import queue
import threading

import numpy as np
from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.node import Node
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robo_reward.envs.observations import ENV_STATE_KEY
from ros_nodes.common import (
    RELIABLE,
    SENSOR,
    SUCCESS_TOPIC,
    declare,
    hardware,
    rgb_to_image,
    to_stamp,
)


class SimRobotNode(Node):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "sim_robot"), **kwargs)
        from sim import make_env

        self.config = cfg = hardware(self)
        if cfg.sim is None:
            raise ValueError(f"{cfg.name} is not a simulated robot (no 'sim' section)")
        self.seed = int(declare(self, "seed", 0))
        self.work: queue.Queue = queue.Queue()
        self.last_action: np.ndarray | None = None
        self.commanded = False
        self.last_step_time = 0.0
        self.running = True
        self.episode_seed = self.seed
        ready, failure = threading.Event(), []

        def owner():
            try:
                self.env = make_env(cfg.sim.task, cfg.sim.robot, cameras=[c.name for c in cfg.cameras],
                                    image_size=(cfg.sim.image_size, cfg.sim.image_size), horizon=10**9,
                                    terminate_on_success=False)
                self.obs, _ = self.env.reset(seed=self.episode_seed)
            except Exception as exc:  # noqa: BLE001 - robosuite/MuJoCo raise many types; reported below
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self.simulate()
            self.env.close()

        self.pub_joints = self.create_publisher(JointState, cfg.topics.joint_states, SENSOR)
        self.pub_ee = [self.create_publisher(PoseStamped, t, SENSOR) for t in cfg.topics.ee_poses]
        self.pub_wrench = self.create_publisher(WrenchStamped, cfg.topics.wrench, SENSOR)
        self.pub_object = self.create_publisher(Float64MultiArray, cfg.topics.object_state, SENSOR)
        self.pub_success = self.create_publisher(Bool, SUCCESS_TOPIC, SENSOR)
        self.pub_cams = {c.name: self.create_publisher(Image, c.topic, SENSOR) for c in cfg.cameras}
        self.create_subscription(Float64MultiArray, cfg.command.topic, self.on_command, RELIABLE)
        self.create_subscription(Float64MultiArray, cfg.command.reset_topic, self.on_joint_target, RELIABLE)
        self.create_service(Trigger, "~/reset_scene", self.on_reset_scene)
        self.thread = threading.Thread(target=owner, name="simulator", daemon=True)
        self.thread.start()
        ready.wait()
        if failure:
            raise ValueError(f"cannot build the simulated robot: {failure[0]}")

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # Callbacks only queue work: one thread owns the simulator, because MuJoCo's offscreen (EGL)
    # rendering context belongs to the thread that created it.
    def on_command(self, msg: Float64MultiArray) -> None:
        self.work.put(("command", np.asarray(msg.data, np.float32)))

    def on_joint_target(self, msg: Float64MultiArray) -> None:
        self.work.put(("joints", np.asarray(msg.data, float)))

    def on_reset_scene(self, request, response):
        done = threading.Event()
        self.work.put(("reset_scene", done))
        response.success = done.wait(timeout=10.0)
        response.message = f"scene reset (seed {self.episode_seed})" if response.success else "scene reset timed out"
        return response

    def simulate(self) -> None:
        """The simulator thread: commands step physics (lockstep with the actor); without any for
        1.5 control periods the arm holds where it is, as a real driver does."""
        period = self.config.control_period_s
        while self.running:
            try:
                kind, payload = self.work.get(timeout=period)
            except queue.Empty:
                kind, payload = "hold", None
            if kind == "hold" and self.now() - self.last_step_time < 1.5 * period:
                continue
            try:
                self.apply(kind, payload)
            except ValueError as exc:  # wrong size or NaN: the driver refuses it and says why
                self.get_logger().error(f"{kind} refused: {exc}")
                continue
            self.publish_state()

    def apply(self, kind: str, payload) -> None:
        if kind == "command":
            self.obs = self.env.step(payload)[0]
            self.last_action, self.commanded = payload, True
        elif kind == "joints":
            self.env.move_arm_joints(payload)
            self.obs = self.env.observation()
        elif kind == "reset_scene":
            self.episode_seed += 1
            self.obs, _ = self.env.reset(seed=self.episode_seed)
            self.last_action, self.commanded = None, False
            payload.set()
        else:
            if self.commanded:  # commands stopped: hold the achieved pose
                self.env.hold_position()
                self.commanded = False
            self.obs = self.env.step(self.env.hold_action(self.last_action))[0]

    def publish_state(self) -> None:
        t = self.now()
        self.last_step_time = t
        stamp = to_stamp(t)
        r = self.env.robot_readings()
        js = JointState(name=r["names"], position=r["positions"].tolist(), velocity=r["velocities"].tolist())
        js.header.stamp = stamp
        self.pub_joints.publish(js)
        for pub, (pos, quat) in zip(self.pub_ee, r["ee_poses"]):
            pose = PoseStamped()
            pose.header.stamp, pose.header.frame_id = stamp, "world"
            p, q = pose.pose.position, pose.pose.orientation
            p.x, p.y, p.z = (float(v) for v in pos)
            q.x, q.y, q.z, q.w = (float(v) for v in quat)
            pub.publish(pose)
        w = WrenchStamped()
        w.header.stamp = stamp
        w.wrench.force.x, w.wrench.force.y, w.wrench.force.z = (float(v) for v in r["force"])
        w.wrench.torque.x, w.wrench.torque.y, w.wrench.torque.z = (float(v) for v in r["torque"])
        self.pub_wrench.publish(w)
        obs = self.obs
        self.pub_object.publish(Float64MultiArray(data=obs[ENV_STATE_KEY].astype(float).tolist()))
        self.pub_success.publish(Bool(data=self.env.check_success()))
        for name, pub in self.pub_cams.items():
            pub.publish(rgb_to_image(obs[f"observation.images.{name}"], t, name))


    def destroy_node(self):
        self.running = False
        self.thread.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(SimRobotNode, args)


if __name__ == "__main__":
    main()
