"""Which nodes run, with which parameters, for each way of running the stack. The launch files and
`robo-reward ros up` both build their node set here, so they cannot drift apart.

Profiles: sim_rehearsal (sim robot + reward + actor + learner + safety + reset + recorder),
real_arm and real_humanoid (one camera node per configured camera instead of the sim robot),
reward_server (cameras + reward server only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from robo_reward.config.hardware import load_hardware_config, resolve_config_path

EXECUTABLES = {  # executable name (setup entry point) -> node class
    "sim_robot": "ros_nodes.sim_robot_node:SimRobotNode",
    "camera": "ros_nodes.camera_node:CameraNode",
    "reward_server": "ros_nodes.reward_server_node:RewardServerNode",
    "actor": "ros_nodes.actor_node:ActorNode",
    "learner": "ros_nodes.learner_node:LearnerNode",
    "safety_monitor": "ros_nodes.safety_monitor_node:SafetyMonitorNode",
    "reset_manager": "ros_nodes.reset_manager_node:ResetManagerNode",
    "recorder": "ros_nodes.recorder_node:RecorderNode",
}
# Start order; `ros up` stops them in reverse: the actor first (no command after a stop is asked
# for), the learner next (checkpoint), the robot before the recorder, whose writer then has the CPU
# to finish the last episodes' videos.
_ROBOT_STACK = ("safety_monitor", "reset_manager", "reward_server", "learner", "actor")
PROFILES = {
    "sim_rehearsal": ("recorder", "sim_robot", *_ROBOT_STACK),
    "real_arm": ("recorder", "camera", *_ROBOT_STACK),
    "real_humanoid": ("recorder", "camera", *_ROBOT_STACK),
    "reward_server": ("camera", "reward_server"),
}


SETTINGS_SEPARATOR = ";"  # values may hold commas (actor_hidden=[256,256]); a launch argument is one string


def join_settings(settings: list[str]) -> str:
    bad = [s for s in settings if SETTINGS_SEPARATOR in s]
    if bad:
        raise ValueError(f"--set {bad[0]!r}: a learner setting cannot contain {SETTINGS_SEPARATOR!r}")
    return SETTINGS_SEPARATOR.join(settings)


def split_settings(text: str) -> list[str]:
    return [s for s in text.split(SETTINGS_SEPARATOR) if s]


@dataclass(frozen=True)
class NodeSpec:
    name: str
    executable: str
    parameters: dict[str, Any] = field(default_factory=dict)


LOCKSTEP_REWARD_WAIT_S = 3600.0
LOCKSTEP_FRAME_WAIT_S = 10.0  # the sim draws an observation's frames as it publishes its state: only load delays them
REAL_ROBOT_EPISODE = (100, "lift the red cube")  # time limit (commands), instruction: unless the user gives them


@dataclass
class StackOptions:
    """The user's choices; empty strings mean "not given" (launch arguments are strings too)."""

    reward: str = "sparse"  # sparse: the robot's own success signal, no reward server; else a reward source
    reward_model: str = ""  # the model directory for a learned reward (robo-reward reward train ...)
    task: str = ""  # the reward model's instruction; "": a sim robot's task's, else REAL_ROBOT_EPISODE's
    base_policy: str = ""
    dataset: str = ""  # demonstrations for a new learner run
    run_dir: str = "runs/ros/learner"
    record_dir: str = "runs/ros/recording"
    mcap: str = ""
    learner_set: str = ""  # KEY=VALUE learner overrides joined by SETTINGS_SEPARATOR
    max_episode_steps: int = 0  # 0: a sim robot's task time limit (as in `rl train`), else REAL_ROBOT_EPISODE's
    checkpoint_every: int = 500  # learner checkpoint period in transitions
    seed: int = 0
    device: str = "auto"
    reward_max_batch: int = 16  # frames the reward server scores in one forward: throughput vs latency
    explore: bool = True  # False: the actor runs without exploration noise (evaluation episodes)
    residual_run: str = ""  # a residual RL run directory: the actor starts from its checkpoint's weights
    lockstep: bool = False  # sim robot: physics advances only on commands (steps exactly as `rl train`)


def episode_settings(cfg, o: StackOptions) -> tuple[int, str]:
    """The episode time limit and the reward model's instruction: the user's, else a sim robot's
    task's (the episodes `rl train` runs), else REAL_ROBOT_EPISODE."""
    if cfg.sim is not None:
        from sim.robosuite_env import task_episode

        steps, text = task_episode(cfg.sim.task, cfg.sim.robot)
    else:
        steps, text = REAL_ROBOT_EPISODE
    return o.max_episode_steps or steps, o.task or text


def node_set(profile: str, hardware_config: str, options: StackOptions | None = None) -> list[NodeSpec]:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {sorted(PROFILES)}")
    o = options or StackOptions()
    config_path = str(resolve_config_path(hardware_config))
    cfg = load_hardware_config(config_path)
    if (cfg.sim is not None) != (profile == "sim_rehearsal") and profile != "reward_server":
        kind = "a simulated" if cfg.sim is not None else "a real"
        raise ValueError(f"profile {profile} does not fit {cfg.name}, which is {kind} robot")
    hw = {"hardware_config": config_path}
    max_episode_steps, task = episode_settings(cfg, o)
    learned = o.reward != "sparse"
    if learned and not o.reward_model:
        raise ValueError(f"reward {o.reward!r} needs a reward model directory")
    # who says an episode succeeded (the reset manager ends episodes on it, the actor's env terminates on
    # it): a learned reward's success call, as in `rl train`; else the simulator's check or an operator
    success_source = "reward" if learned else ("robot" if cfg.sim is not None else "operator")
    # lockstep: simulated time stands still between commands, so a reward that falls behind is waited
    # for (every observation scored, every transition rewarded, as in `rl train`) instead of skipped
    reward_wait_s = LOCKSTEP_REWARD_WAIT_S if o.lockstep else None
    specs: dict[str, list[NodeSpec]] = {
        "sim_robot": [NodeSpec("sim_robot", "sim_robot", {**hw, "seed": o.seed, "advance_when_idle": not o.lockstep})],
        "camera": [NodeSpec(f"camera_{c.name}", "camera", {**hw, "camera": c.name}) for c in cfg.cameras],
        "reward_server": [NodeSpec("reward_server", "reward_server",
                                   {**hw, "model": o.reward_model, "task": task, "device": o.device,
                                    "max_batch": o.reward_max_batch, "score_every_frame": o.lockstep,
                                    # beside an actor: one reading per control step, as in `rl train`
                                    "score_at": "frames" if profile == "reward_server" else "observations",
                                    **({"frame_wait_s": LOCKSTEP_FRAME_WAIT_S} if o.lockstep else {})})]
        if learned or profile == "reward_server" else [],
        "actor": [NodeSpec("actor", "actor", {**hw, "base_policy": o.base_policy, "seed": o.seed,
                                              "device": "cpu", "success_source": success_source,
                                              "explore": o.explore, "max_episode_steps": max_episode_steps,
                                              "residual_run": o.residual_run})],
        "learner": [NodeSpec("learner", "learner", {
            **hw, "run_dir": o.run_dir, "dataset": o.dataset, "base_policy": o.base_policy,
            "reward": o.reward, "reward_model": o.reward_model,
            "learner_set": o.learner_set, "checkpoint_every": o.checkpoint_every, "seed": o.seed,
            "device": o.device, **({"reward_max_wait_s": reward_wait_s} if reward_wait_s else {})})],
        "safety_monitor": [NodeSpec("safety_monitor", "safety_monitor", hw)],
        "reset_manager": [NodeSpec("reset_manager", "reset_manager", {
            **hw, "max_episode_steps": max_episode_steps, "seed": o.seed,
            "success_source": success_source, "wait_for_answer": o.lockstep,
            "scene_reset_service": "/sim_robot/reset_scene" if cfg.sim is not None else "",
            "auto_recover": cfg.sim is not None})],
        "recorder": [NodeSpec("recorder", "recorder", {**hw, "dataset_out": o.record_dir, "mcap_out": o.mcap,
                                                       "task": task})],
    }
    return [spec for kind in PROFILES[profile] for spec in specs[kind]]
