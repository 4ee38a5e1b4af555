"""Reward server: N camera topics aligned by source time within a tolerance,
scored by any robo_reward reward model (batched when it falls behind, on the GPU when present),
published on /robo_reward/reward stamped with the source time, with its own latency.

Parameters: model (directory / hf:ORG/NAME / clip:NAME), task (changeable at runtime with
`ros2 param set`), tolerance_s, device, score_at. `score_at` "observations" (beside an actor): the
frames nearest each observation the actor acts on (/robo_reward/observations), one reading per
control step stamped with the observation's time, so a model with per-episode state steps as the
reward wrapper steps it in `rl train`; "frames": every aligned frame set (a server on its own). It
publishes the model's reading (progress, success, the model's own reward); the learner turns
readings into reward. Bad images or a model that cannot score give an explicit no-reward output
(success = 0, reward NaN, logged), never a crash.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from collections import deque

from rcl_interfaces.msg import SetParametersResult
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from robo_reward.envs.rendering import render_mismatch
from robo_reward.errors import RoboRewardError
from robo_reward.rewards.registry import load_reward_model
from robo_reward.runtime.codecs import MessageError
from robo_reward.runtime.reward_server import (
    FramesAtObservations,
    Observed,
    RewardOutput,
    RewardServerCore,
    Sample,
)
from robo_reward.runtime.sync import ApproximateTimeSync
from ros_nodes.common import (
    EPISODE_TOPIC,
    LATCHED,
    OBSERVATIONS_TOPIC,
    RELIABLE,
    REWARD_TOPIC,
    SENSOR_SUB,
    StackNode,
    declare,
    episode_defaults,
    hardware,
    image_to_array,
    json_msg,
    named_values,
    read_named_values,
    to_sec,
)

SCORE_AT = ("observations", "frames")


class RewardServerNode(StackNode):
    def __init__(self, **kwargs):
        super().__init__(kwargs.pop("node_name", "reward_server"), **kwargs)
        self.config = cfg = hardware(self)
        model_path = str(declare(self, "model", ""))
        if not model_path:
            raise RoboRewardError("reward_server: parameter model is required")
        self.model = load_reward_model(model_path, str(declare(self, "device", "auto")))
        if getattr(self.model, "state_width", 0):
            raise RoboRewardError(f"reward model {model_path} reads {self.model.state_width} values of observation.state "
                                  "besides its cameras; the reward server gives models camera frames only: train it "
                                  "on images alone to score on the robot")
        self.core = RewardServerCore(self.model, str(declare(self, "task", episode_defaults(cfg)[1])))
        self.max_batch = int(declare(self, "max_batch", 16))
        if self.max_batch < 1:
            raise RoboRewardError(f"reward_server: parameter max_batch must be >= 1, got {self.max_batch}")
        # frames waiting longer than this are skipped, so latency stays bounded when the model is
        # slower than the cameras (e.g. a ViT on a CPU); the learner drops their transitions
        self.max_age_s = float(declare(self, "max_age_s", 1.0))
        # a lockstep rehearsal: simulated time waits for commands, so no frame is ever too old to score
        self.score_every_frame = bool(declare(self, "score_every_frame", False))
        self.score_at = str(declare(self, "score_at", "observations"))
        if self.score_at not in SCORE_AT:
            raise RoboRewardError(f"reward_server: parameter score_at must be one of {SCORE_AT}, got {self.score_at!r}")
        topics = {c.name: c.topic for c in cfg.cameras}
        missing = [c for c in self.model.cameras if c not in topics]
        if missing:
            raise RoboRewardError(f"reward model needs cameras {missing}; {cfg.name} has {sorted(topics)}")
        if cfg.sim is not None:  # a simulated robot's frames are drawn as its config says
            mismatch = render_mismatch(model_path, getattr(self.model, "render_settings", None),
                                       cfg.sim.render_settings().to_dict(), f"the sim robot of {cfg.name}")
            if mismatch:
                raise RoboRewardError(mismatch)
        self.sync = ApproximateTimeSync(list(self.model.cameras), float(declare(self, "tolerance_s", 0.02)))
        self.sync_lock = threading.Lock()
        # beside an actor: an observation waits this long for the camera frames of its time
        self.pairing = FramesAtObservations(self.sync.tolerance_s, float(declare(self, "frame_wait_s", 0.5)))
        self.pairing_changed = threading.Condition()
        self.scored_episode: int | None = None  # the episode whose observations the stream steps on
        self.first_frame: float | None = None  # when the first aligned frame set came (monotonic)
        self.heard_actor = False  # an observation has been announced since the start
        self.samples: queue.Queue = queue.Queue(maxsize=256)
        # what went wrong, for ~/status (JSON once a second): operators see why rewards are missing
        self.counts = {"scored": 0, "no_reward": 0, "bad_messages": 0, "stale_dropped": 0, "queue_full": 0,
                       "before_episode": 0, "repeated_frames": 0, "inference_errors": 0}
        self.last_error = ""
        self.pub = self.create_publisher(JointState, REWARD_TOPIC, RELIABLE)
        self.status_pub = self.create_publisher(String, "~/status", LATCHED)
        self.create_timer(1.0, self.publish_status)
        for cam in self.model.cameras:
            self.create_subscription(Image, topics[cam], lambda m, c=cam: self.on_image(m, c), SENSOR_SUB)
        if self.score_at == "observations":
            self.create_subscription(JointState, OBSERVATIONS_TOPIC, self.on_observed, RELIABLE)
        else:
            self.create_subscription(String, EPISODE_TOPIC, self.on_episode, LATCHED)
        self.add_on_set_parameters_callback(self.on_parameters)
        self.episode = None
        # the running episode's first frame (its start state's source time, from the reset manager) and
        # the samples scored last: the episode's stream starts at that frame even if it was scored
        # before the episode's start was heard (the frame comes first), as a simulated episode's does
        self.episode_start: float | None = None
        self.last_stamp: float | None = None  # the newest frame the current stream has stepped on
        self.recent: deque = deque(maxlen=64)
        self.running = True
        self.worker = threading.Thread(target=self.run_inference, name="reward-inference", daemon=True)
        self.worker.start()

    def on_parameters(self, params) -> SetParametersResult:
        for p in params:
            if p.name == "task":
                try:
                    self.core.set_task(str(p.value))
                except RoboRewardError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                self.get_logger().info(f"task is now {p.value!r}")
        return SetParametersResult(successful=True)

    def on_episode(self, msg: String) -> None:
        status = json.loads(msg.data)
        if status.get("phase") == "running" and status.get("episode") != self.episode:
            self.episode = status.get("episode")
            self.samples.put(("new_episode", status.get("start_stamp")))

    def on_observed(self, msg: JointState) -> None:
        episode = read_named_values(msg).get("episode", math.nan)
        if not (math.isfinite(episode) and float(episode).is_integer()):
            self.bad_input(f"observation skipped: its episode is {episode!r}, not an integer")
            return
        self.heard_actor = True
        with self.pairing_changed:
            self.pairing.add_observation(Observed(to_sec(msg.header.stamp), int(episode), time.monotonic()))
            self.pairing_changed.notify()

    def _add(self, stream: str, stamp: float, item) -> None:
        with self.sync_lock:
            sets = self.sync.add(stream, stamp, item)
        if self.score_at == "observations":
            if sets and self.first_frame is None:
                self.first_frame = time.monotonic()
            with self.pairing_changed:
                for s in sets:
                    self.pairing.add_frames(s.stamp, s.items)
                self.pairing_changed.notify()
            return
        for s in sets:
            try:
                self.samples.put_nowait(("sample", (s.stamp, s.items, time.monotonic())))
            except queue.Full:
                self.counts["queue_full"] += 1  # inference cannot keep up: newer work is not queued

    def on_image(self, msg: Image, camera: str) -> None:
        try:
            frame = image_to_array(msg)
        except MessageError as exc:
            self.bad_input(f"camera {camera}: image skipped ({exc})")
            return
        self._add(camera, to_sec(msg.header.stamp), frame)

    def bad_input(self, message: str) -> None:
        self.counts["bad_messages"] += 1
        self.last_error = message
        self.get_logger().warning(message, throttle_duration_sec=2.0)

    def publish_status(self) -> None:
        if not self.heard_actor and self.first_frame is not None and time.monotonic() - self.first_frame > 10.0:
            self.get_logger().warning(
                f"frames arrive but no actor has announced an observation on {OBSERVATIONS_TOPIC}: beside an "
                "actor this server scores the observations it acts on; on its own, start it with score_at:=frames "
                "(the reward_server profile)", throttle_duration_sec=30.0)
        self.status_pub.publish(json_msg({**self.counts, "last_error": self.last_error, "task": self.core.task}))

    def run_inference(self) -> None:
        """The inference thread: an unexpected error in one round is logged and counted, never the
        end of the node's rewards."""
        serve_once = self.serve_observations_once if self.score_at == "observations" else self.serve_frames_once
        while self.running:
            try:
                serve_once()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any one bad round
                self.counts["inference_errors"] += 1
                self.last_error = f"inference: {type(exc).__name__}: {exc}"
                self.get_logger().error(self.last_error, throttle_duration_sec=2.0)
                time.sleep(0.1)  # an error that repeats does not spin a core

    def serve_frames_once(self) -> None:
        """On its own: take everything queued and score the newest max_batch frame sets in one go.
        When the model is slower than the cameras the older frames are skipped, so a reading is never
        more than about two batches' compute behind its frame."""
        try:
            work = [self.samples.get(timeout=0.1)]
        except queue.Empty:
            return
        while True:
            try:
                work.append(self.samples.get_nowait())
            except queue.Empty:
                break
        excess = 0 if self.score_every_frame else sum(kind == "sample" for kind, _ in work) - self.max_batch
        batch = []
        now = time.monotonic()
        for kind, payload in work + [("end", None)]:
            if kind == "sample" and (excess > 0 or (now - payload[2] > self.max_age_s and not self.score_every_frame)):
                excess -= 1
                self.counts["stale_dropped"] += 1  # behind real time: skip it
                continue
            if kind != "sample" and batch:
                self.score(batch)
                self.recent.extend(batch)
                batch = []
            if kind == "new_episode":
                self.core.new_episode()
                self.episode_start, self.last_stamp = payload, None
                # the episode's frames already scored in the last episode's stream, scored again
                for stamp, items, _ in list(self.recent):
                    if payload is not None and stamp >= payload - self.sync.tolerance_s and self._new_frame(stamp):
                        batch.append((stamp, items, time.monotonic()))
                self.recent.clear()
            elif kind == "sample":
                if self.episode_start is not None and payload[0] < self.episode_start - self.sync.tolerance_s:
                    self.counts["before_episode"] += 1  # a frame from before the episode started
                    continue
                if self._new_frame(payload[0]):
                    batch.append(payload)

    def serve_observations_once(self) -> None:
        """Beside an actor: the frames of each observation it acted on, in order, in batches of up to
        max_batch; a new episode restarts the model's stream at its first observation, as a reset
        does in `rl train`. Observations waiting longer than max_age_s are skipped (their
        transitions get no reward)."""
        with self.pairing_changed:
            pairs = self.pairing.ready(time.monotonic())
            self.counts["repeated_frames"] = self.pairing.repeated
            if not pairs:
                self.pairing_changed.wait(timeout=0.02)
                return
        batch, now = [], time.monotonic()
        for observed, frames in pairs:
            if batch and (observed.episode != self.scored_episode or frames is None or len(batch) >= self.max_batch):
                self.score(batch)
                batch = []
            if observed.episode != self.scored_episode:
                self.core.new_episode()
                self.scored_episode = observed.episode
            if now - observed.arrived > self.max_age_s and not self.score_every_frame:
                self.counts["stale_dropped"] += 1
            elif frames is None:
                self.publish(observed.stamp, RewardOutput(observed.stamp, ok=False, error=(
                    f"no camera frames within {self.sync.tolerance_s} s of the observation")), observed.arrived)
            else:
                batch.append((observed.stamp, frames, observed.arrived))
        if batch:
            self.score(batch)

    def _new_frame(self, stamp: float) -> bool:
        """A stream steps once per frame: a state published again under its own stamp (a robot idle
        between commands, a lockstep sim waiting) is not a new frame."""
        if self.last_stamp is not None and stamp <= self.last_stamp + 1e-9:
            self.counts["repeated_frames"] += 1
            return False
        self.last_stamp = stamp
        return True

    def score(self, batch) -> None:
        samples = [Sample(stamp, {c: items[c] for c in self.model.cameras})
                   for stamp, items, _ in batch]
        try:
            outputs = self.core.process(samples)
        except Exception as exc:  # noqa: BLE001 - the inference thread must outlive any one bad batch
            outputs = [RewardOutput(s.stamp, ok=False, error=f"{type(exc).__name__}: {exc}") for s in samples]
        for (stamp, _, arrived), out in zip(batch, outputs):
            self.publish(stamp, out, arrived)

    def publish(self, stamp: float, out: RewardOutput, arrived: float) -> None:
        if out.ok:
            self.counts["scored"] += 1
        else:
            self.counts["no_reward"] += 1
            self.last_error = f"no reward at {stamp:.3f}: {out.error}"
            self.get_logger().warning(self.last_error, throttle_duration_sec=2.0)
        self.pub.publish(named_values(stamp, {"progress": out.progress, "reward": out.reward,
                                              "success": float(out.success), "ok": float(out.ok),
                                              "latency_s": time.monotonic() - arrived}))

    def destroy_node(self):
        self.running = False
        self.worker.join(timeout=2.0)
        return super().destroy_node()


def main(args=None) -> None:
    from ros_nodes.runner import run_single

    run_single(RewardServerNode, args)


if __name__ == "__main__":
    main()
