"""ROS 2 runtime benchmarks over real Fast DDS on loopback, nodes in separate processes:

1. camera -> published reward: camera nodes (OpenCV reading 640x480 video files at 30 Hz) in one
   process, the reward server in another, this script subscribing in a third. Latency = arrival
   of the reward - the camera frame's capture stamp (p50/p99); sustained reward rate. 1 camera:
   CLIP ViT-B-32 (open_clip architecture, random weights: same compute as the real checkpoint);
   3 cameras: a 3-view hop model (fusion over the aligned frames).
2. safety stop latency: this script plays the arm driver (joint states, pose, wrench at 100 Hz),
   injects a force over the limit, and times the monitor's latched ERROR status; then resets.
3. actor control-loop jitter: sim robot (state only) + actor + safety + reset manager; intervals
   between the commands the actor publishes at 20 Hz.

  python bench/bench_ros_runtime.py            # -> bench/results/ros_runtime_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import cv2
import numpy as np
import torch
import yaml
from diagnostic_msgs.msg import DiagnosticStatus
from geometry_msgs.msg import PoseStamped, WrenchStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger

from robo_reward.config.hardware import CONFIG_DIR, load_hardware_config
from ros_nodes.common import LATCHED, RELIABLE, SENSOR_PUB, to_sec, to_stamp
from ros_nodes.runner import BackgroundNode, ros_up_process

RESULTS = Path(__file__).parent / "results"
CAMERA_NAMES = ["agentview", "wrist", "side"]  # CLIP reads the first ("agentview" by default)


def percentiles(values) -> dict:
    v = np.asarray(values, float)
    if not len(v):
        return {"n": 0}
    return {"n": len(v), "p50_ms": round(float(np.percentile(v, 50)) * 1e3, 2),
            "p99_ms": round(float(np.percentile(v, 99)) * 1e3, 2), "max_ms": round(float(v.max()) * 1e3, 2)}


class Probe(BackgroundNode):
    def __init__(self, domain: int):
        super().__init__("bench_probe", domain)

    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_video(path: Path, seconds: float = 20.0, fps: int = 30) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
    for t in range(int(seconds * fps)):
        frame = np.full((480, 640, 3), 60, np.uint8)
        x = int(40 + 500 * (t / (seconds * fps)))
        frame[200:280, x:x + 80] = (40, 40, 220)
        writer.write(frame)
    writer.release()


def reward_models(work: Path) -> dict[int, Path]:
    import open_clip
    from safetensors.torch import save_file

    from robo_reward.rewards.base import Episode
    from robo_reward.rewards.process import (
        HopNetConfig,
        HopTrainConfig,
        save_hop_model,
        train_hop_model,
    )

    clip_dir = work / "clip_vit_b32"
    if not clip_dir.exists():
        clip_dir.mkdir(parents=True)
        model = open_clip.create_model("ViT-B-32", pretrained=None)
        cfg = open_clip.get_model_config("ViT-B-32")
        (clip_dir / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}))
        save_file({k: v.contiguous() for k, v in model.state_dict().items()},
                  str(clip_dir / "open_clip_model.safetensors"))
    hop_dir = work / "hop_3view"
    if not hop_dir.exists():
        rng = np.random.default_rng(0)
        frames = {c: rng.integers(0, 255, (30, 64, 64, 3), dtype=np.uint8) for c in CAMERA_NAMES}
        demo = Episode(frames, "lift the red cube")
        net, log = train_hop_model([demo], HopNetConfig(cameras=tuple(CAMERA_NAMES), image_size=64),
                                   HopTrainConfig(steps=5, batch_size=8, device="cpu"), progress=False)
        save_hop_model(hop_dir, net, {c: frames[c][-1] for c in CAMERA_NAMES}, train_log=log)
    return {1: clip_dir, 3: hop_dir}


def bench_reward_latency(work: Path, cameras: int, model: Path, seconds: float, domain: int,
                         max_batch: int = 16) -> dict:
    videos = []
    for name in CAMERA_NAMES[:cameras]:
        path = work / f"{name}.mp4"
        if not path.exists():
            write_video(path)
        videos.append(path)
    config = yaml.safe_load((CONFIG_DIR / "franka_panda.yaml").read_text())
    config["cameras"] = [{"name": n, "topic": f"/cameras/{n}/image_raw", "width": 640, "height": 480,
                          "rate_hz": 30, "source": str(v)} for n, v in zip(CAMERA_NAMES, videos)]
    path = work / f"arm_{cameras}cam.yaml"
    path.write_text(yaml.safe_dump(config))
    probe = Probe(domain)
    latencies, server_latencies, arrivals = [], [], []

    def on_reward(msg: JointState):
        now = probe.now()
        values = dict(zip(msg.name, msg.position))
        latencies.append(now - to_sec(msg.header.stamp))
        server_latencies.append(values["latency_s"])
        arrivals.append(time.monotonic())

    probe.node.create_subscription(JointState, "/robo_reward/reward", on_reward, RELIABLE)
    common = ["--profile", "reward_server", "--reward", "clip" if cameras == 1 else "hop", "--reward-model", str(model),
              "--device", "cpu", "--reward-max-batch", str(max_batch)]
    server = ros_up_process(path, [*common, "--only", "reward_server"], domain, work / f"server_{cameras}.log")
    cams = ros_up_process(path, [*common, "--only", *[f"camera_{n}" for n in CAMERA_NAMES[:cameras]]], domain,
                          work / f"cameras_{cameras}.log")
    try:
        end = time.monotonic() + 240
        while len(latencies) < 10 and time.monotonic() < end:  # model loading, discovery
            time.sleep(0.5)
        latencies.clear(), server_latencies.clear(), arrivals.clear()
        time.sleep(seconds)
        got = len(arrivals)
    finally:
        stop(cams)
        stop(server)
        probe.close()
    return {"cameras": cameras, "model": "CLIP ViT-B-32" if cameras == 1 else "hop model, 3 views",
            "camera_rate_hz": 30, "image": "640x480 rgb8", "seconds": seconds, "max_batch": max_batch,
            "reward_rate_hz": round(got / seconds, 2), "camera_to_reward": percentiles(latencies),
            "server_queue_to_publish": percentiles(server_latencies)}


def bench_safety_stop(work: Path, domain: int, trials: int) -> dict:
    cfg = load_hardware_config("franka_panda")
    monitor = ros_up_process(CONFIG_DIR / "franka_panda.yaml", ["--profile", "real_arm", "--only", "safety_monitor"],
                             domain, work / "safety.log")
    probe = Probe(domain)
    node = probe.node
    joints = node.create_publisher(JointState, cfg.topics.joint_states, SENSOR_PUB)
    pose = node.create_publisher(PoseStamped, cfg.topics.ee_poses[0], SENSOR_PUB)
    wrench = node.create_publisher(WrenchStamped, cfg.topics.wrench, SENSOR_PUB)
    state = {"force": 5.0, "errors": []}

    def on_status(msg: DiagnosticStatus):
        if msg.level == DiagnosticStatus.ERROR:
            state["errors"].append((time.monotonic(), msg.message))

    node.create_subscription(DiagnosticStatus, "/robo_reward/safety", on_status, LATCHED)

    def drive():  # the arm driver at 100 Hz
        while state.get("run", True):
            stamp = to_stamp(probe.now())
            js = JointState(name=cfg.joints.names, position=list(cfg.home.positions))
            js.header.stamp = stamp
            joints.publish(js)
            p = PoseStamped()
            p.header.stamp = stamp
            p.pose.position.x, p.pose.position.z, p.pose.orientation.w = 0.5, 0.3, 1.0
            pose.publish(p)
            w = WrenchStamped()
            w.header.stamp = stamp
            w.wrench.force.z = state["force"]
            wrench.publish(w)
            time.sleep(0.01)

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    client = node.create_client(Trigger, "/safety_monitor/reset")
    delays = []
    try:
        assert client.wait_for_service(timeout_sec=120)
        time.sleep(2.0)
        for _ in range(trials):
            future = client.call_async(Trigger.Request())
            while not future.done():
                time.sleep(0.01)
            time.sleep(0.2)
            before = len(state["errors"])
            sent = time.monotonic()
            state["force"] = 1000.0
            while len(state["errors"]) == before and time.monotonic() - sent < 5:
                time.sleep(0.0005)
            if len(state["errors"]) > before:
                delays.append(state["errors"][before][0] - sent)
            state["force"] = 5.0
            time.sleep(0.1)
    finally:
        state["run"] = False
        driver.join()
        stop(monitor)
        probe.close()
    return {"trials": trials, "driver_rate_hz": 100, "violation_to_latched_error": percentiles(delays),
            "note": "time from publishing an over-limit wrench to receiving the ERROR status, across processes"}


def bench_actor_jitter(work: Path, base: Path, dataset: Path, domain: int, seconds: float) -> dict:
    config = yaml.safe_load((CONFIG_DIR / "sim_panda_lift.yaml").read_text())
    config["cameras"] = []  # state-based actor: physics only, no rendering
    path = work / "sim_state_only.yaml"
    path.write_text(yaml.safe_dump(config))
    probe = Probe(domain)
    commands, phases = [], []
    probe.node.create_subscription(Float64MultiArray, "/robo_reward/command",
                                   lambda m: commands.append(time.monotonic()), RELIABLE)
    probe.node.create_subscription(String, "/robo_reward/episode",
                                   lambda m: phases.append((time.monotonic(), json.loads(m.data)["phase"])), LATCHED)
    stack = ros_up_process(path, ["--base", str(base), "--dataset", str(dataset), "--run-dir", str(work / "learner"),
                                  "--record-dir", str(work / "recording"), "--max-episode-steps", "200",
                                  "--only", "sim_robot", "actor", "safety_monitor", "reset_manager"], domain,
                           work / "actor.log")
    try:
        end = time.monotonic() + 240
        while len(commands) < 20 and time.monotonic() < end:
            time.sleep(0.5)
        commands.clear()
        time.sleep(seconds)
        times = list(commands)
    finally:
        stop(stack)
        probe.close()
    intervals = np.diff(times)
    running = intervals[intervals < 0.5]  # gaps between episodes (resets) are not control periods
    return {"control_rate_hz": 20, "seconds": seconds, "commands": len(times),
            "interval": {**percentiles(running), "mean_ms": round(float(running.mean()) * 1e3, 2),
                         "std_ms": round(float(running.std()) * 1e3, 2)}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--safety-trials", type=int, default=50)
    p.add_argument("--base", default="runs/bench/lift/base")
    p.add_argument("--dataset", default="runs/bench/lift/demos")
    p.add_argument("--work", default="runs/bench/ros")
    p.add_argument("--parts", nargs="+", default=["reward", "safety", "actor"],
                   help="reward, safety, actor, reward_batch (1-camera CLIP at each --max-batch)")
    p.add_argument("--max-batch", type=int, nargs="+", default=[1, 4, 16], help="reward_batch: values to compare")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    out = RESULTS / f"ros_runtime_{device}.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    results["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    results["command"] = "python bench/bench_ros_runtime.py " + " ".join(sys.argv[1:])
    domain = random.randint(100, 150)
    if "reward" in args.parts:
        models = reward_models(work)
        results["reward_latency"] = [bench_reward_latency(work, n, models[n], args.seconds, domain) for n in (1, 3)]
    if "reward_batch" in args.parts:
        clip = reward_models(work)[1]
        results["reward_latency_by_max_batch"] = [bench_reward_latency(work, 1, clip, args.seconds, domain, b)
                                                  for b in args.max_batch]
    if "safety" in args.parts:
        results["safety_stop"] = bench_safety_stop(work, domain, args.safety_trials)
    if "actor" in args.parts:
        results["actor_jitter"] = bench_actor_jitter(work, Path(args.base), Path(args.dataset), domain, args.seconds)
    RESULTS.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
