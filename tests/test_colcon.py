"""The robot user's build step: `colcon build` (colcon-core + colcon-ros from the project's Python
3.12 environment) of this ament_python package, then every installed node executable started the
way `ros2 launch` starts it (its parameters from the same node graph, a params file, a ROS domain of
its own) and stopped with SIGINT."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from reward_helpers import save_tiny_open_clip  # noqa: E402

from robo_reward.cli import main  # noqa: E402
from diagnostic_msgs.msg import DiagnosticStatus  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from ros_nodes.common import LATCHED, RELIABLE, SENSOR_SUB  # noqa: E402
from ros_nodes.graph import EXECUTABLES  # noqa: E402
from ros_nodes.runner import BackgroundNode  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _copy_checkout(target: Path) -> None:
    """The files a clone has (tracked, plus new ones not ignored): no .venv, runs/ or build output."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
def test_colcon_build_installs_nodes_that_start_and_stop_on_sigint(camera_demos, tmp_path, capsys):
    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.rl.scripted_policy import save_scripted_policy

    workspace = tmp_path / "ws"
    _copy_checkout(workspace / "src" / "robo_reward")
    colcon = Path(sys.executable).parent / "colcon"
    built = subprocess.run([str(colcon), "build", "--base-paths", "src"], cwd=workspace, capture_output=True,
                           text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    install = workspace / "install" / "robo_reward"
    share = install / "share" / "robo_reward"
    assert {p.name for p in (share / "launch").iterdir()} == {p.name for p in (ROOT / "launch").glob("*.launch.py")}
    assert {p.name for p in (share / "hardware_configs").iterdir()} == \
        {p.name for p in (ROOT / "hardware_configs").glob("*.yaml")}
    assert (share / "package.xml").is_file()
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "robo_reward").is_file()
    assert set(EXECUTABLES) <= {p.name for p in (install / "lib" / "robo_reward").iterdir()}

    # each node's parameters as the sim rehearsal launch file gives them, plus a camera on a video file
    clip, base = save_tiny_open_clip(tmp_path / "clip"), tmp_path / "base"
    save_scripted_policy(base, read_env_spec(camera_demos), noise=0.0, seed=0)
    assert main(["ros", "up", "sim_panda_lift", "--reward", "clip", "--reward-model", str(clip), "--base", str(base),
                 "--dataset", str(camera_demos), "--run-dir", str(tmp_path / "run"), "--record-dir",
                 str(tmp_path / "record"), "--device", "cpu", "--print-nodes"]) == 0
    nodes = json.loads(capsys.readouterr().out)
    video = tmp_path / "front.mp4"
    subprocess.run([sys.executable, "-c", "import cv2, numpy as np; w = cv2.VideoWriter(%r, cv2.VideoWriter_fourcc("
                    "*'mp4v'), 30, (64, 48)); [w.write(np.full((48, 64, 3), i * 20, np.uint8)) for i in range(10)]; "
                    "w.release()" % str(video)], check=True)
    nodes.append({"name": "camera_front", "executable": "camera", "parameters": {
        "hardware_config": "franka_panda", "camera": "front", "source": str(video), "topic": "/test/front"}})
    assert {n["executable"] for n in nodes} == set(EXECUTABLES)

    domain = random.randint(100, 140)
    site = next((install / "lib").glob("python3.*/site-packages"))
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "AMENT_PREFIX_PATH": str(install),
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    watcher = BackgroundNode("colcon_test", domain)
    heard: set[str] = set()  # what each running node publishes once it is up
    for topic, kind, qos in [("/joint_states", JointState, SENSOR_SUB), ("/test/front", Image, SENSOR_SUB),
                             ("/robo_reward/safety", DiagnosticStatus, LATCHED), ("/robo_reward/episode", String, LATCHED),
                             ("/robo_reward/actor_status", String, LATCHED), ("/reward_server/status", String, LATCHED),
                             ("/robo_reward/learner_heartbeat", String, RELIABLE)]:
        watcher.node.create_subscription(kind, topic, lambda _, t=topic: heard.add(t), qos)
    procs = {}
    try:
        for n in nodes:
            params = tmp_path / f"{n['name']}.yaml"
            params.write_text(yaml.safe_dump({n["name"]: {"ros__parameters": n["parameters"]}}))
            log = open(tmp_path / f"{n['name']}.log", "w")  # noqa: SIM115 - closed with the process below
            procs[n["name"]] = (subprocess.Popen(
                [str(install / "lib" / "robo_reward" / n["executable"]), "--ros-args", "-r", f"__node:={n['name']}",
                 "--params-file", str(params)], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT), log)
        end = time.monotonic() + 240
        while time.monotonic() < end and not (len(heard) == 7 and {n["name"] for n in nodes} <= set(
                watcher.node.get_node_names())):
            assert all(p.poll() is None for p, _ in procs.values()), {
                name: (tmp_path / f"{name}.log").read_text()[-2000:] for name, (p, _) in procs.items()
                if p.poll() is not None}
            time.sleep(0.5)
        assert {n["name"] for n in nodes} <= set(watcher.node.get_node_names()) and len(heard) == 7, heard
        for name, (proc, log) in reversed(procs.items()):  # as `ros up` stops them: the recorder last
            start = time.monotonic()
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:  # CI keeps only the assertion: put the hung node's stacks in it
                proc.send_signal(signal.SIGUSR1)  # ros_nodes.runner prints every thread's stack
                time.sleep(1.0)
                raise AssertionError(f"{name} still running 30 s after SIGINT; its log with the stacks:\n"
                                     f"{(tmp_path / f'{name}.log').read_text()[-6000:]}") from None
            log.close()
            output = (tmp_path / f"{name}.log").read_text()
            assert proc.returncode == 0 and "Traceback" not in output, f"{name}: {output[-2000:]}"
            # the recorder first finishes the recording (encodes the last episodes' videos, finalizes)
            budget = 60.0 if name == "recorder" else 5.0
            assert time.monotonic() - start < budget, f"{name} took {time.monotonic() - start:.1f} s to stop"
        if (tmp_path / "record").exists():  # what it recorded loads with lerobot's own reader
            from lerobot.datasets.lerobot_dataset import LeRobotDataset

            assert LeRobotDataset("local/record", root=tmp_path / "record").meta.total_episodes >= 1
    finally:
        for proc, log in procs.values():
            if proc.poll() is None:
                proc.kill()
            log.close()
        watcher.close()
