"""Learner: the residual learner of robo_reward.rl fed by the actor's transitions, rewarded here by
the run's rule from the reward server's readings (joined by source time) or, with the sparse reward,
from the robot's own success signal. Publishes actor weights periodically and a heartbeat; checkpoints periodically and on
shutdown, and resumes from its run directory after a restart."""

from __future__ import annotations

import math
import queue
import threading
from pathlib import Path

import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String, UInt8MultiArray

from robo_reward.errors import RoboRewardError
from robo_reward.rewards import RewardSpec
from robo_reward.rewards.shaping import RewardReading
from robo_reward.rl.residual_policy import LATEST_CHECKPOINT
from robo_reward.rl.runs import learner_config
from robo_reward.runtime.codecs import MessageError, decode_transition
from robo_reward.runtime.learner import RewardJoin, RuntimeLearner
from ros_nodes.common import (
    HEARTBEAT_TOPIC,
    LATCHED,
    RELIABLE,
    REWARD_TOPIC,
    StackNode,
    TRANSITIONS_TOPIC,
    WEIGHTS_TOPIC,
    declare,
    json_msg,
    monotonic,
    read_named_values,
    to_sec,
)
from ros_nodes.graph import split_settings

FUTURE_TOLERANCE_S = 1.0  # a stamp this far ahead of the learner's clock is a broken clock, not a message


class LearnerNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "learner"), **kwargs)
        run_dir = Path(str(declare(self, "run_dir", "runs/ros_learner")))
        device = str(declare(self, "device", "cpu"))
        self.reward_source = str(declare(self, "reward", "sparse"))
        spec = RewardSpec(source=self.reward_source, model=str(declare(self, "reward_model", "")) or None) \
            if self.reward_source != "sparse" else RewardSpec(source="sparse")
        if (run_dir / LATEST_CHECKPOINT).exists() or (run_dir / f".{LATEST_CHECKPOINT.name}.old").exists():
            self.learner = RuntimeLearner.resume(run_dir, device, spec)
            self.get_logger().info(f"resumed {run_dir} at env step {self.learner.progress['env_step']}")
        else:
            dataset, base = str(declare(self, "dataset", "")), str(declare(self, "base_policy", ""))
            if not dataset or not base:
                raise RoboRewardError("learner: a new run needs parameters dataset and base_policy")
            settings = split_settings(str(declare(self, "learner_set", "")))
            self.learner = RuntimeLearner.create(run_dir, Path(dataset), Path(base),
                                                 learner_config(settings, int(declare(self, "seed", 0))), spec,
                                                 device)
            self.get_logger().info(f"new run {run_dir}")
        self.join = RewardJoin(tolerance_s=float(declare(self, "reward_tolerance_s", 0.02)),
                               max_wait_s=float(declare(self, "reward_max_wait_s", 2.0)))
        self.checkpoint_every = int(declare(self, "checkpoint_every", 500))
        # transitions waiting beyond this are stored without their updates: the robot does not wait
        self.max_backlog = int(declare(self, "max_backlog", 20))
        self.since_checkpoint = 0
        self.rejected: dict[str, int] = {}  # reason -> dropped messages
        self.last_rejection = ""
        self.published_at_update = -1
        self.pub_weights = self.create_publisher(UInt8MultiArray, WEIGHTS_TOPIC, LATCHED)
        self.pub_heartbeat = self.create_publisher(String, HEARTBEAT_TOPIC, RELIABLE)
        self.create_subscription(Float64MultiArray, TRANSITIONS_TOPIC, self.on_transition, RELIABLE)
        self.create_subscription(JointState, REWARD_TOPIC, self.on_reward, RELIABLE)
        self.create_timer(float(declare(self, "publish_period_s", 2.0)), self.publish_weights)
        self.create_timer(0.5, self.heartbeat)
        self.inbox: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.running = True
        self.worker = threading.Thread(target=self.learn, name="learning", daemon=True)
        self.worker.start()
        self.publish_weights()

    # Callbacks only queue: gradient steps run on the learning thread. A slow callback would also
    # make rclpy's multi-threaded executor spin at 100% CPU while the callback's group is busy.
    def reject(self, what: str, reason: str) -> None:
        """Count a dropped message by its reason (heartbeat: `rejected`, `last_rejection`); never raise."""
        key = f"{what}: {reason.split(' (')[0]}"
        self.rejected[key] = self.rejected.get(key, 0) + 1
        self.last_rejection = f"{what}: {reason}"
        self.get_logger().warning(self.last_rejection, throttle_duration_sec=2.0)

    def from_the_future(self, stamp: float) -> bool:
        return stamp > self.get_clock().now().nanoseconds * 1e-9 + FUTURE_TOLERANCE_S

    def on_reward(self, msg: JointState) -> None:
        """A reward model's reading of one observation; one it could not score carries no reading."""
        values, stamp = read_named_values(msg), to_sec(msg.header.stamp)
        if values.get("ok", 0.0) <= 0.5:
            return
        if self.from_the_future(stamp):
            self.reject("reward reading", "stamp from the future")
            return
        reading = RewardReading(values.get("progress", math.nan), values.get("success", 0.0) > 0.5,
                                values.get("reward", math.nan))
        self.inbox.put(("reading", (stamp, reading)))

    def on_transition(self, msg: Float64MultiArray) -> None:
        try:
            t = decode_transition(np.asarray(msg.data), self.learner.learner.obs_dim, self.learner.learner.act_dim)
        except MessageError as exc:
            self.reject("transition", str(exc))
            return
        if self.from_the_future(t.stamp):
            self.reject("transition", "stamp from the future")
            return
        self.inbox.put(("transition", t))

    def learn(self) -> None:
        """The learning thread: pair transitions with rewards, store them, update."""
        while self.running:
            try:
                kind, item = self.inbox.get(timeout=0.5)
            except queue.Empty:
                kind, item = "tick", None
            with self.lock:
                if kind == "reading":
                    self.join.add_reading(*item)
                elif kind == "transition" and self.reward_source == "sparse":  # the robot's own success signal
                    self.add(item)
                elif kind == "transition":
                    self.join.add_transition(item, monotonic())
                for t in self.join.ready(monotonic()):  # overdue ones are dropped and counted
                    self.add(t)

    def add(self, t) -> None:
        try:
            self.learner.add(t, update=self.inbox.qsize() <= self.max_backlog)
        except RoboRewardError as exc:  # e.g. a reading whose progress is not a number: no reward for it
            self.reject("transition", str(exc))
            return
        self.since_checkpoint += 1
        if self.since_checkpoint >= self.checkpoint_every:
            self.checkpoint()

    def checkpoint(self) -> None:
        self.learner.checkpoint()
        self.since_checkpoint = 0

    def publish_weights(self) -> None:
        """New weights only when the actor changed (the first publish always goes out)."""
        with self.lock:
            updates = self.learner.learner.num_updates
            if updates == self.published_at_update:
                return
            self.published_at_update = updates
            blob = self.learner.actor_weights()
        self.pub_weights.publish(UInt8MultiArray(data=blob))

    def heartbeat(self) -> None:
        p = self.learner.progress
        self.pub_heartbeat.publish(json_msg({"env_step": p["env_step"], "episodes": p["episodes"],
                                             "weights_version": p["weights_version"],
                                             "no_reward_dropped": self.join.dropped,
                                             "after_success_dropped": self.join.after_success, "rejected": self.rejected,
                                             "last_rejection": self.last_rejection,
                                             "updates": self.learner.learner.num_updates,
                                             "utd_reached": round(self.learner.utd_reached, 3),
                                             "utd_configured": self.learner.learner.cfg.utd_ratio,
                                             "skipped_updates": p["skipped_updates"], "backlog": self.inbox.qsize()}))

    def destroy_node(self):
        self.running = False
        self.worker.join(timeout=30)
        with self.lock:
            self.checkpoint()  # nothing learned is lost on a clean shutdown
        return super().destroy_node()


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(LearnerNode, args)


if __name__ == "__main__":
    main()
