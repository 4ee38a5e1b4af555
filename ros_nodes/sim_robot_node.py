"""Sim robot: a sim/ environment (sim.driver, in its own process) behind the topics a real driver
exposes, so the whole stack rehearses sim-to-real with no code change.

Publishes /joint_states, one PoseStamped per end effector, a WrenchStamped, the object state
(what perception would publish), each configured camera, and the simulator's success check, all
stamped with the time the state was produced.
Follows normalized-action commands (one physics step each, lockstep with the actor) and
joint-position reset commands; without commands it holds position at the control rate.
Service ~/reset_scene re-draws the object placement (what an operator does on real hardware).
"""

from __future__ import annotations

import queue
import threading

from geometry_msgs.msg import PoseStamped, WrenchStamped
from rclpy.callback_groups import ReentrantCallbackGroup
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from ros_nodes.common import (
    RELIABLE,
    SCENE_SEED,
    SENSOR_PUB,
    SUCCESS_TOPIC,
    StackNode,
    declare,
    hardware,
    named_values,
    object_state_msg,
    rgb_to_image,
    to_stamp,
)
from sim.driver import DriverProcess


class SimRobotNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "sim_robot"), **kwargs)
        self.config = cfg = hardware(self)
        if cfg.sim is None:
            raise ValueError(f"{cfg.name} is not a simulated robot (no 'sim' section)")
        self.driver = DriverProcess(task=cfg.sim.task, robot=cfg.sim.robot, cameras=[c.name for c in cfg.cameras],
                                    image_size=cfg.sim.image_size, seed=int(declare(self, "seed", 0)),
                                    render=cfg.sim.render_settings().to_dict())
        # a driver follows the latest command, never a backlog: one slot per kind, scene resets first
        self.latest: dict[str, list[float]] = {}
        self.resets: queue.Queue = queue.Queue()
        self.wake = threading.Event()
        self.last_step_time = 0.0
        # False (lockstep): physics advances only on commands and resets; while idle the last state is
        # published again under its own stamp (the watchdogs stay fed, nothing moves), so a rehearsal
        # steps exactly like `rl train`. True: the arm holds position at the control rate, as a real one.
        self.advance_when_idle = bool(declare(self, "advance_when_idle", True))
        self.last_state: tuple[dict, float] | None = None  # (snapshot, stamp) last published
        self.running = True
        self.pub_joints = self.create_publisher(JointState, cfg.topics.joint_states, SENSOR_PUB)
        self.pub_ee = [self.create_publisher(PoseStamped, t, SENSOR_PUB) for t in cfg.topics.ee_poses]
        self.pub_wrench = self.create_publisher(WrenchStamped, cfg.topics.wrench, SENSOR_PUB)
        self.pub_object = self.create_publisher(JointState, cfg.topics.object_state, SENSOR_PUB)
        self.pub_success = self.create_publisher(JointState, SUCCESS_TOPIC, SENSOR_PUB)
        self.pub_cams = {c.name: self.create_publisher(Image, c.topic, SENSOR_PUB) for c in cfg.cameras}
        self.create_subscription(Float64MultiArray, cfg.command.topic, self.on_command, RELIABLE)
        self.create_subscription(Float64MultiArray, cfg.command.reset_topic, self.on_joint_target, RELIABLE)
        # the service waits for the simulator thread: its own reentrant group keeps the node's other
        # callbacks running meanwhile (and the executor from spinning on them)
        self.create_service(Trigger, "~/reset_scene", self.on_reset_scene, callback_group=ReentrantCallbackGroup())
        self.publish_state(self.driver.first)
        self.thread = threading.Thread(target=self.simulate, name="simulator", daemon=True)
        self.thread.start()

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def on_command(self, msg: Float64MultiArray) -> None:
        self.latest["command"] = list(msg.data)
        self.wake.set()

    def on_joint_target(self, msg: Float64MultiArray) -> None:
        self.latest["joints"] = list(msg.data)
        self.wake.set()

    def on_reset_scene(self, request, response):
        done: list = []
        event = threading.Event()
        self.resets.put((event, done))
        self.wake.set()
        response.success = event.wait(timeout=10.0) and bool(done)
        response.message = f"scene reset (seed {done[0]})" if response.success else "scene reset failed or timed out"
        return response

    def next_request(self) -> tuple[str, object, tuple | None]:
        period = self.config.control_period_s
        while self.running:
            if not self.resets.empty():
                return "reset_scene", None, self.resets.get()
            for kind in ("joints", "command"):
                payload = self.latest.pop(kind, None)
                if payload is not None:
                    return kind, payload, None
            if self.now() - self.last_step_time >= 1.5 * period:
                return "hold", None, None
            self.wake.wait(timeout=period / 2)
            self.wake.clear()
        return "stop", None, None

    def simulate(self) -> None:
        """Commands step physics (lockstep with the actor); without any for 1.5 control periods the
        arm holds where it is, as a real driver does."""
        while self.running:
            kind, payload, reply = self.next_request()
            if kind == "stop":
                break
            if kind == "hold" and not self.advance_when_idle:  # lockstep: time stands still between commands
                self.publish_state(*self.last_state)
                continue
            try:
                status, result = self.driver.request(kind, payload)
            except (TimeoutError, EOFError, OSError) as exc:  # hung or gone: restart it, as a driver is
                if not self.running:
                    break
                self.get_logger().error(f"simulated driver failed ({exc or type(exc).__name__}); restarting it")
                self.driver.kill()
                args = self.driver.args
                self.driver = DriverProcess(**{**args, "seed": args["seed"] + 1000})
                status, result = "ok", self.driver.first
            if status != "ok":
                self.get_logger().error(f"{kind} refused: {result}")
            else:
                self.publish_state(result)
            if reply is not None:
                event, done = reply
                if status == "ok":
                    done.append(result["scene_seed"])
                event.set()

    def publish_state(self, r: dict, stamp: float | None = None) -> None:
        """`stamp`: the source time of a state published again (lockstep idle). A new state is stamped
        now — or, in lockstep, one control period after the last state: simulated time, which stands
        still while idle (a wall-clock stamp after an idle spell would look like a clock jump)."""
        if stamp is not None:
            t = stamp
        elif self.advance_when_idle or self.last_state is None:
            t = self.now()
        else:
            t = self.last_state[1] + self.config.control_period_s
        self.last_step_time, self.last_state = self.now(), (r, t)
        stamp = to_stamp(t)
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
        self.pub_object.publish(object_state_msg(t, r["object_state"]))
        # beside success, the scene's reset seed until the first command moves things: a recording of this
        # robot knows which initial states its episodes started from (none for an episode begun without a reset)
        seed = {} if r["scene_seed"] is None else {SCENE_SEED: r["scene_seed"]}
        self.pub_success.publish(named_values(t, {"success": float(r["success"]), **seed}))
        for name, pub in self.pub_cams.items():
            pub.publish(rgb_to_image(r["images"][name], t, name))

    def destroy_node(self):
        self.running = False
        self.wake.set()
        self.thread.join(timeout=10.0)
        self.driver.close()
        return super().destroy_node()


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(SimRobotNode, args)


if __name__ == "__main__":
    main()
