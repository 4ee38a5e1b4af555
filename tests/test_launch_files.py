"""The launch files and `robo-reward ros up` describe the same nodes and parameters, and the repo is a
valid ament_python package.

ROS 2's launch system is not installable here, so the launch files run against recording
stand-ins for the handful of launch/launch_ros classes they use (DeclareLaunchArgument,
LaunchConfiguration, OpaqueFunction, Node, ...): exactly the calls `ros2 launch` would make.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import tomllib

from robo_reward.cli import main
from robo_reward.config.hardware import load_hardware_config
from ros_nodes.graph import EXECUTABLES, PROFILES

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = {"sim_rehearsal": "sim_panda_lift", "real_arm": "franka_panda", "real_humanoid": "gr1",
                "reward_server": "franka_panda"}


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context):
        return context[self.args[0]]


def _stand_ins() -> dict[str, types.ModuleType]:
    launch = types.ModuleType("launch")
    launch.LaunchDescription = _Recorded
    actions = types.ModuleType("launch.actions")
    actions.DeclareLaunchArgument = actions.OpaqueFunction = actions.SetEnvironmentVariable = _Recorded
    substitutions = types.ModuleType("launch.substitutions")
    substitutions.LaunchConfiguration = _LaunchConfiguration
    substitutions.EnvironmentVariable = _Recorded
    launch_ros = types.ModuleType("launch_ros")
    ros_actions = types.ModuleType("launch_ros.actions")
    ros_actions.Node = _Recorded
    return {"launch": launch, "launch.actions": actions, "launch.substitutions": substitutions,
            "launch_ros": launch_ros, "launch_ros.actions": ros_actions}


def _launch_nodes(profile: str, overrides: dict[str, str]) -> list[dict]:
    spec = importlib.util.spec_from_file_location(f"launch_{profile}", ROOT / "launch" / f"{profile}.launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    entities = description.args[0]
    context = {e.args[0]: e.kwargs["default_value"] for e in entities if e.__class__ is _Recorded
               and "default_value" in e.kwargs and e.args and isinstance(e.args[0], str)
               and e.args[0] != "FASTDDS_DEFAULT_PROFILES_FILE"}
    context.update(overrides)
    opaque = [e for e in entities if "function" in e.kwargs]
    assert len(opaque) == 1
    nodes = opaque[0].kwargs["function"](context)
    assert all(n.kwargs["package"] == "robo_reward" for n in nodes)
    return [{"name": n.kwargs["name"], "executable": n.kwargs["executable"], "parameters": n.kwargs["parameters"][0]}
            for n in nodes]


@pytest.mark.parametrize("profile", sorted(LAUNCH_FILES))
def test_launch_files_match_ros_up(profile, monkeypatch, capsys, tmp_path):
    for name, module in _stand_ins().items():
        monkeypatch.setitem(sys.modules, name, module)
    config = LAUNCH_FILES[profile]
    overrides = {"reward": "hop", "reward_model": str(tmp_path / "hop"), "base_policy": str(tmp_path / "base"),
                 "dataset": str(tmp_path / "demos"), "max_episode_steps": "120", "seed": "3"}
    launched = _launch_nodes(profile, {"hardware_config": config, **overrides})
    assert main(["ros", "up", config, "--profile", profile, "--reward", "hop", "--reward-model",
                 str(tmp_path / "hop"), "--base", str(tmp_path / "base"), "--dataset", str(tmp_path / "demos"),
                 "--max-episode-steps", "120", "--seed", "3", "--print-nodes"]) == 0
    assert launched == json.loads(capsys.readouterr().out)
    kinds = {n["executable"] for n in launched}
    assert kinds == set(PROFILES[profile]) and kinds <= set(EXECUTABLES)
    if profile != "sim_rehearsal":  # one camera node per camera of the hardware config
        cameras = load_hardware_config(config).cameras
        assert [n["name"] for n in launched if n["executable"] == "camera"] == [f"camera_{c.name}" for c in cameras]


def test_a_sim_rehearsal_runs_its_tasks_episodes_unless_told_otherwise(capsys, tmp_path):
    """The time limit and the reward model's instruction of `rl train`'s episodes (PickPlaceCan: 200
    steps, the scripted base needs ~115-150), the user's where given; a real robot's fixed defaults."""
    def episode(*args: str) -> dict[str, object]:
        assert main(["ros", "up", *args, "--reward", "hop", "--reward-model", str(tmp_path / "hop"),
                     "--print-nodes"]) == 0
        nodes = {n["name"]: n["parameters"] for n in json.loads(capsys.readouterr().out)}
        limits = {nodes["actor"]["max_episode_steps"], nodes["reset_manager"]["max_episode_steps"]}
        assert len(limits) == 1 and nodes["reward_server"]["task"] == nodes["recorder"]["task"]
        return {"steps": limits.pop(), "task": nodes["reward_server"]["task"]}

    assert episode("sim_panda_can") == {"steps": 200, "task": "pick up the can and place it in the bin"}
    assert episode("sim_gr1_lift") == {"steps": 120, "task": "lift the red cube"}
    assert episode("sim_panda_can", "--max-episode-steps", "50", "--task", "bin it") == {"steps": 50, "task": "bin it"}
    assert episode("franka_panda", "--profile", "real_arm") == {"steps": 100, "task": "lift the red cube"}


def test_ros_up_rejects_mismatched_profiles(capsys):
    assert main(["ros", "up", "franka_panda", "--profile", "sim_rehearsal", "--print-nodes"]) == 2
    assert "does not fit franka_panda, which is a real robot" in capsys.readouterr().err
    assert main(["ros", "up", "sim_panda_lift", "--reward", "hop", "--print-nodes"]) == 2
    assert "needs a reward model directory" in capsys.readouterr().err
    assert main(["ros", "check", "no_such_robot"]) == 2
    assert "not one of" in capsys.readouterr().err


def test_repo_is_an_ament_python_package():
    package = ET.parse(ROOT / "package.xml").getroot()
    assert package.get("format") == "3" and package.findtext("name") == "robo_reward"
    assert package.find("export/build_type").text == "ament_python"
    assert {"rclpy", "sensor_msgs", "launch_ros"} <= {d.text for d in package.findall("exec_depend")}
    assert (ROOT / "resource" / "robo_reward").is_file()
    assert "script_dir=$base/lib/robo_reward" in (ROOT / "setup.cfg").read_text()
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for executable, target in EXECUTABLES.items():  # every node is a `ros2 run robo_reward <name>` executable
        module = target.split(":")[0]
        assert scripts[executable] == f"{module}:main"
