"""Episode recorder: every control step of a running episode (observation, command, reward, success,
safety state) into a LeRobotDataset written through lerobot's API, one episode at a time, with a simulated
robot's scene seed per episode (a policy trained on it then knows which initial states it saw); safety
events into safety_events.jsonl beside it; optionally every message on the robot's topics into an
MCAP file that ROS tools open. Episodes are saved as they end and the partial one on shutdown.

The dataset is written by a worker process: video encoding holds the GIL for seconds, and in a
composed process (`robo-reward ros up`) that would stall the actor and the safety monitor."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, WrenchStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, String

from robo_reward.data.lerobot_io import EpisodeRecorder
from robo_reward.envs.observations import IMAGE_PREFIX
from robo_reward.runtime.actor import observation_from_parts, proprio_state
from robo_reward.runtime.codecs import MessageError
from robo_reward.safety.monitor import JointStateError
from robo_reward.worker import ignore_stop_signals
from sim import task_scene
from ros_nodes.common import (
    EPISODE_TOPIC,
    LATCHED,
    RELIABLE,
    REWARD_TOPIC,
    SAFETY_TOPIC,
    SCENE_SEED,
    SENSOR_SUB,
    SUCCESS_TOPIC,
    StackNode,
    declare,
    episode_defaults,
    hardware,
    image_to_array,
    pose_parts,
    read_named_values,
)
from ros_nodes.mcap_log import McapLog

SAFETY_EVENTS_FILE = "safety_events.jsonl"


def free_path(path: Path) -> Path:
    """`path`, or `path_1`, `path_2`, ... when it exists: a restarted recorder never overwrites."""
    n, candidate = 0, path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}_{n}")
    return candidate


class RecorderNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "recorder"), **kwargs)
        self.config = cfg = hardware(self)
        self.out = free_path(Path(str(declare(self, "dataset_out", "runs/ros_recording"))))
        self.task = str(declare(self, "task", episode_defaults(cfg)[1]))
        mcap = str(declare(self, "mcap_out", ""))
        self.mcap = McapLog(free_path(Path(mcap))) if mcap else None
        # the writer process starts with the first episode: a recorder that recorded nothing stops at once
        self.episodes_queue = mp.get_context("spawn").Queue()
        self.writer = mp.get_context("spawn").Process(target=write_episodes, args=(self.episodes_queue, str(self.out)),
                                                      name="episode-writer", daemon=False)
        self.latest: dict = {}
        self.frames: list[dict] = []
        self.episode = None
        self.safety_ok, self.safety_reason = False, "no status yet"
        self.saved_episodes = 0
        self.events: list[dict] = []
        subs = [(JointState, cfg.topics.joint_states, SENSOR_SUB), (WrenchStamped, cfg.topics.wrench, SENSOR_SUB),
                (JointState, cfg.topics.object_state, SENSOR_SUB), (JointState, SUCCESS_TOPIC, SENSOR_SUB),
                (Float64MultiArray, cfg.command.topic, RELIABLE), (JointState, REWARD_TOPIC, RELIABLE),
                (DiagnosticStatus, SAFETY_TOPIC, LATCHED), (String, EPISODE_TOPIC, LATCHED)]
        subs += [(PoseStamped, t, SENSOR_SUB) for t in cfg.topics.ee_poses]
        subs += [(Image, c.topic, SENSOR_SUB) for c in cfg.cameras]
        for msg_type, topic, qos in subs:
            self.create_subscription(msg_type, topic, lambda m, t=topic: self.on_message(t, m), qos)

    def on_message(self, topic: str, msg) -> None:
        if self.mcap is not None:
            self.mcap.write(topic, msg, self.get_clock().now().nanoseconds)
        cfg = self.config
        if topic == EPISODE_TOPIC:
            self.on_episode(json.loads(msg.data))
        elif topic == SAFETY_TOPIC:
            ok = msg.level == DiagnosticStatus.OK
            if msg.level == DiagnosticStatus.ERROR and msg.message != self.safety_reason:
                self.events.append({"time": self.get_clock().now().nanoseconds * 1e-9, "reason": msg.message,
                                    "episode": (self.episode or {}).get("episode")})
            self.safety_ok, self.safety_reason = ok, msg.message
        elif topic == cfg.command.topic:
            self.on_command(np.asarray(msg.data, np.float32))
        elif isinstance(msg, Image):
            try:
                self.latest[topic] = image_to_array(msg)
            except MessageError as exc:
                self.get_logger().warning(f"{topic}: frame not recorded ({exc})", throttle_duration_sec=2.0)
        else:
            self.latest[topic] = msg

    def observation(self) -> dict | None:
        cfg = self.config
        js = self.latest.get(cfg.topics.joint_states)
        poses = [self.latest.get(t) for t in cfg.topics.ee_poses]
        images = {c.name: self.latest.get(c.topic) for c in cfg.cameras}
        if js is None or any(p is None for p in poses) or any(i is None for i in images.values()):
            return None
        try:
            state = proprio_state(cfg, js.name, js.position, [pose_parts(p) for p in poses])
        except JointStateError:
            return None
        obj = self.latest.get(cfg.topics.object_state)
        return observation_from_parts(state, None if obj is None else np.asarray(obj.position, np.float32), images)

    def outcome_now(self) -> tuple[float, bool]:
        reward_msg = self.latest.get(REWARD_TOPIC)
        success_msg = self.latest.get(SUCCESS_TOPIC)
        success = success_msg is not None and read_named_values(success_msg).get("success", 0.0) > 0.5
        if reward_msg is not None:
            values = read_named_values(reward_msg)
            return float(values.get("reward", np.nan)), success or values.get("success", 0.0) > 0.5
        return float(success), success

    def scene_seed_now(self) -> int | None:
        """The simulated robot's scene seed, which it reports only while no command has run since the
        scene's reset (None: a real robot, an episode begun without a reset, or a value that is no seed)."""
        msg = self.latest.get(SUCCESS_TOPIC)
        seed = None if msg is None else read_named_values(msg).get(SCENE_SEED)
        if seed is None:
            return None
        if not (math.isfinite(seed) and seed == int(seed) and abs(seed) < 2**53):
            self.get_logger().warning(f"{SUCCESS_TOPIC}: scene seed {seed} is not a whole number; not recorded",
                                      throttle_duration_sec=5.0)
            return None
        return int(seed)

    def on_command(self, action: np.ndarray) -> None:
        if not self.episode or self.episode.get("phase") != "running":
            return
        obs = self.observation()
        if obs is None:
            return
        if self.frames:  # the previous step's outcome is what the robot reports now
            self.frames[-1]["reward"], self.frames[-1]["success"] = self.outcome_now()
        self.frames.append({"obs": obs, "action": action, "reward": np.nan, "success": False,
                            "safety_ok": self.safety_ok, "scene_seed": self.scene_seed_now()})

    def on_episode(self, status: dict) -> None:
        previous, self.episode = self.episode, status
        if previous and previous.get("phase") == "running" and \
                (status.get("phase") != "running" or status.get("episode") != previous.get("episode")):
            self.save_episode()

    def save_episode(self) -> None:
        if not self.frames:
            return
        self.frames[-1]["reward"], self.frames[-1]["success"] = self.outcome_now()
        steps = [(f["obs"], f["action"], f["reward"] if np.isfinite(f["reward"]) else 0.0, f["success"],
                  i == len(self.frames) - 1, self.task) for i, f in enumerate(self.frames)]
        if self.writer.pid is None:
            self.writer.start()
        # the scene seed its simulated robot reported as the episode began (None: a real robot)
        seed = next((f["scene_seed"] for f in self.frames if f["scene_seed"] is not None), None)
        self.episodes_queue.put((self.dataset_args(self.frames[0]), steps, seed, list(self.events)))
        self.saved_episodes += 1
        self.frames = []
        self.get_logger().info(f"episode {self.saved_episodes} queued for {self.out}")

    def dataset_args(self, first: dict) -> dict:
        cfg = self.config
        spec = {"hardware_config": cfg.name, "cameras": [c.name for c in cfg.cameras], "task_text": self.task}
        if cfg.sim is not None:
            size = cfg.sim.image_size
            spec.update(task=cfg.sim.task, robot=cfg.sim.robot, image_size=[size, size],
                        render=cfg.sim.render_settings().to_dict(), scene=task_scene(cfg.sim.task, cfg.sim.robot))
        shapes = {k: (tuple(v.shape), k.startswith(IMAGE_PREFIX)) for k, v in first["obs"].items()}
        return {"fps": round(cfg.control_rate_hz), "shapes": shapes, "action_dim": cfg.command.action_dim,
                "spec": spec, "robot_type": cfg.name}

    def destroy_node(self):
        self.save_episode()  # the episode in progress is kept, not lost
        if self.writer.is_alive():
            self.episodes_queue.put(None)
            self.writer.join(timeout=300)  # encoding the last episodes' videos
            if self.writer.is_alive():
                self.get_logger().error(f"episode writer still busy; {self.out} may lack the last episodes")
        if self.mcap is not None:
            self.mcap.close()
        return super().destroy_node()


def write_episodes(episodes: mp.Queue, out: str) -> None:
    """Worker process: one LeRobotDataset (created with the first episode's shapes), an episode per
    queue item, finalized at None (the node sends it when it stops)."""
    ignore_stop_signals()
    recorder = None
    try:
        while (item := episodes.get()) is not None:
            args, steps, seed, events = item
            if recorder is None:
                spaces = {k: gym.spaces.Box(0, 255, shape, np.uint8) if image
                          else gym.spaces.Box(-np.inf, np.inf, shape, np.float32)
                          for k, (shape, image) in args["shapes"].items()}
                recorder = EpisodeRecorder(out, args["fps"], gym.spaces.Dict(spaces), args["action_dim"], args["spec"],
                                           robot_type=args["robot_type"])
            for step in steps:
                recorder.add_step(*step)
            if note := recorder.save_episode(seed, drop_seeds_on_mismatch=True):  # the episode matters more
                print(f"episode-writer: {note}", file=sys.stderr, flush=True)
            (Path(out) / SAFETY_EVENTS_FILE).write_text("".join(json.dumps(e) + "\n" for e in events))
    finally:
        if recorder is not None:
            recorder.__exit__(None, None, None)


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(RecorderNode, args)


if __name__ == "__main__":
    main()
