"""Starting stack nodes by hand: the reward server refuses, at start and by name, a model it cannot
feed (it gives models camera frames only, so a classifier that also reads observation.state would
score no frame and the learner would drop every transition); nodes given only a hardware config run
the episodes `ros up` would give them."""

from __future__ import annotations

import random

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter

from robo_reward.errors import RoboRewardError
from robo_reward.rewards.classifier import SuccessNet, SuccessNetConfig, save_success_classifier
from ros_nodes.reward_server_node import RewardServerNode


def start_reward_server(model, context, hardware_config: str = "sim_panda_lift") -> RewardServerNode:
    return RewardServerNode(context=context, parameter_overrides=[
        Parameter("hardware_config", value=hardware_config), Parameter("model", value=str(model)),
        Parameter("device", value="cpu")])


def classifier(out, camera: str = "agentview", state_dim: int = 0):
    cfg = SuccessNetConfig(cameras=(camera,), image_size=32, feature_dim=8, hidden=8, state_dim=state_dim)
    return save_success_classifier(out, SuccessNet(cfg))


def test_the_reward_server_refuses_a_classifier_that_reads_the_robot_state(tmp_path):
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=random.randint(150, 200))
    try:
        with pytest.raises(RoboRewardError, match=r"clf_state reads 18 values of observation.state besides its "
                                                  r"cameras; the reward server gives models camera frames only"):
            start_reward_server(classifier(tmp_path / "clf_state", state_dim=18), context)
        start_reward_server(classifier(tmp_path / "clf_frames"), context).destroy_node()  # frames alone: it starts
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize("hardware_config", ["sim_panda_can", "franka_panda"])
def test_nodes_started_with_only_a_hardware_config_run_the_episodes_ros_up_gives_them(hardware_config, tmp_path):
    """A sim robot's task time limit and instruction (Can: 200 commands, not a real robot's 100, which
    would cut the base's ~115-150-step successes); a real robot's REAL_ROBOT_EPISODE."""
    from robo_reward.config.hardware import load_hardware_config
    from ros_nodes.graph import StackOptions, node_set
    from ros_nodes.reset_manager_node import ResetManagerNode

    robot = load_hardware_config(hardware_config)
    profile = "sim_rehearsal" if robot.sim is not None else "real_arm"
    options = StackOptions(reward="hop", reward_model="model")
    stack = {n.name: n.parameters for n in node_set(profile, hardware_config, options)}
    expected_steps, expected_task = stack["reset_manager"]["max_episode_steps"], stack["reward_server"]["task"]
    assert (expected_steps, expected_task) == ((200, "pick up the can and place it in the bin") if robot.sim is not None
                                               else (100, "lift the red cube"))
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=random.randint(150, 200))
    try:
        server = start_reward_server(classifier(tmp_path / "clf", robot.cameras[0].name), context,
                                     hardware_config)
        manager = ResetManagerNode(context=context, parameter_overrides=[Parameter("hardware_config",
                                                                                   value=hardware_config)])
        assert (manager.max_steps, server.core.task) == (expected_steps, expected_task)
        server.destroy_node()
        manager.destroy_node()
    finally:
        rclpy.shutdown(context=context)
