"""Message <-> numpy helpers and the conventions every robo_reward node shares.

Topics that carry robo_reward's own signals (standard message types only):
  /robo_reward/safety       diagnostic_msgs/DiagnosticStatus  level OK/ERROR, message = reason
  /robo_reward/episode      std_msgs/String                    JSON {phase, episode, step, reason}
  /robo_reward/reward       sensor_msgs/JointState             stamped named values (see REWARD_FIELDS)
  /robo_reward/transitions  std_msgs/Float64MultiArray         runtime.codecs.encode_transition
  /robo_reward/actor_weights std_msgs/UInt8MultiArray          safetensors bytes (runtime.codecs)
  /robo_reward/learner_heartbeat std_msgs/String              JSON {env_step, weights_version}
  /robo_reward/actor_status std_msgs/String                    JSON {weights_version, link, gate}
  /robo_reward/intervention std_msgs/Bool; /robo_reward/operator_command std_msgs/Float64MultiArray
  /robo_reward/observations sensor_msgs/JointState             stamped {episode}: the states the actor acts on
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from robo_reward.config.hardware import HardwareConfig, load_hardware_config
from robo_reward.runtime.codecs import image_to_rgb

SAFETY_TOPIC = "/robo_reward/safety"
EPISODE_TOPIC = "/robo_reward/episode"
REWARD_TOPIC = "/robo_reward/reward"
TRANSITIONS_TOPIC = "/robo_reward/transitions"
WEIGHTS_TOPIC = "/robo_reward/actor_weights"
HEARTBEAT_TOPIC = "/robo_reward/learner_heartbeat"
ACTOR_STATUS_TOPIC = "/robo_reward/actor_status"
INTERVENTION_TOPIC = "/robo_reward/intervention"
OPERATOR_COMMAND_TOPIC = "/robo_reward/operator_command"
OBSERVATIONS_TOPIC = "/robo_reward/observations"  # the reward server scores the frames of these times
# sensor_msgs/JointState as stamped named values {"success": 0/1}: the robot's own success signal (the
# simulator's check), stamped with the state it judges so that it belongs to one observation; a simulated
# robot adds its scene's reset seed (SCENE_SEED)
SUCCESS_TOPIC = "/robo_reward/robot_success"
SCENE_SEED = "scene_seed"
REWARD_FIELDS = ("progress", "reward", "success", "ok", "latency_s")  # a reward model's reading of a frame

# late joiners get the last value of state-like topics (safety, episode phase, weights)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
RELIABLE = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
# Sensor streams (joint states, poses, wrench, cameras): subscriptions take best effort, so they match
# any driver (camera and arm drivers commonly publish best effort, and a RELIABLE subscription never
# matches a best-effort publisher); our own publishers stay reliable, which best-effort readers accept.
SENSOR_SUB = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
SENSOR_PUB = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


class StackNode(Node):
    """A node of this stack: its subscriptions carry no QoS-event handlers.

    rclpy 9 gives every subscription two by default (incompatible QoS, incompatible type), and with
    Fast DDS a subscription's event conditions wake the executor's wait set as long as a message
    waits to be taken. A message waits whenever the thread pool is behind, so the spin thread then
    loops without sleeping and holds the GIL that the pool needs to catch up: the robot process spun
    ~2,000 empty wake-ups a second on one core, and its commands fell from 20 to 1-3 a second
    (tests/test_stack_node.py shows the spin, bench/bench_robot_executor.py the rates). Publishers keep their
    handlers, so a subscriber asking for incompatible QoS is still reported by our publisher; our
    sensor subscriptions take best effort, which every publisher offers."""

    def create_subscription(self, *args, **kwargs):
        kwargs.setdefault("event_callbacks", SubscriptionEventCallbacks(use_default_callbacks=False))
        return super().create_subscription(*args, **kwargs)


def to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_stamp(seconds: float) -> Time:
    sec, nanosec = divmod(round(seconds * 1e9), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def monotonic() -> float:
    return time.monotonic()


def rgb_to_image(rgb: np.ndarray, stamp: float, frame_id: str = "") -> Image:
    msg = Image()
    msg.header.stamp, msg.header.frame_id = to_stamp(stamp), frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding, msg.is_bigendian, msg.step = "rgb8", 0, int(rgb.shape[1] * 3)
    msg.data = np.ascontiguousarray(rgb, np.uint8).tobytes()
    return msg


def image_to_array(msg: Image) -> np.ndarray:
    """RGB uint8 (H, W, 3); raises runtime.codecs.MessageError for unknown encodings or bad sizes."""
    return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data)


def pose_parts(msg) -> tuple[tuple[float, float, float], tuple[float, float, float, float]]:
    """(position xyz, quaternion xyzw) of a geometry_msgs/PoseStamped."""
    p, q = msg.pose.position, msg.pose.orientation
    return (p.x, p.y, p.z), (q.x, q.y, q.z, q.w)


def named_values(stamp: float, values: Mapping[str, float]) -> JointState:
    """A stamped named-value vector (sensor_msgs/JointState used as a generic record)."""
    msg = JointState()
    msg.header.stamp = to_stamp(stamp)
    msg.name = list(values)
    msg.position = [float(v) for v in values.values()]
    return msg


def read_named_values(msg: JointState) -> dict[str, float]:
    return dict(zip(msg.name, msg.position))


def object_state_msg(stamp: float, values) -> JointState:
    """Object state (what perception reports, or the simulator) as stamped named values."""
    return named_values(stamp, {f"object_{i}": v for i, v in enumerate(values)})


def json_msg(payload: Mapping) -> String:
    return String(data=json.dumps(payload))


def safety_status(ok: bool, latched: bool, reason: str, values: Mapping[str, str] | None = None) -> DiagnosticStatus:
    """OK; WARN = not OK yet without a fault (waiting for first data); ERROR = a latched violation."""
    level = DiagnosticStatus.OK if ok else (DiagnosticStatus.ERROR if latched else DiagnosticStatus.WARN)
    return DiagnosticStatus(level=level, name="robo_reward_safety", message=reason,
                            values=[KeyValue(key=k, value=str(v)) for k, v in (values or {}).items()])


def declare(node: Node, name: str, default):
    """Declare a parameter and return its value."""
    return node.declare_parameter(name, default).value


def hardware(node: Node) -> HardwareConfig:
    """Every node takes `hardware_config` (a YAML path or a shipped config name)."""
    return load_hardware_config(declare(node, "hardware_config", "sim_panda_lift"))


def episode_defaults(cfg: HardwareConfig) -> tuple[int, str]:
    """The defaults of the `max_episode_steps` and `task` parameters: what `ros up` and the launch
    files give (graph.episode_settings), so that a node started by hand runs the same episodes."""
    from ros_nodes.graph import StackOptions, episode_settings

    return episode_settings(cfg, StackOptions())
