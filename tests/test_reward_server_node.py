"""The reward server node refuses, at start and by name, a model it cannot feed: it gives models
camera frames only, so a classifier that also reads observation.state would score no frame and the
learner would drop every transition."""

from __future__ import annotations

import random

import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter

from robo_reward.errors import RoboRewardError
from robo_reward.rewards.classifier import SuccessNet, SuccessNetConfig, save_success_classifier
from ros_nodes.reward_server_node import RewardServerNode


def start_reward_server(model, context) -> RewardServerNode:
    return RewardServerNode(context=context, parameter_overrides=[
        Parameter("hardware_config", value="sim_panda_lift"), Parameter("model", value=str(model)),
        Parameter("device", value="cpu")])


def test_the_reward_server_refuses_a_classifier_that_reads_the_robot_state(tmp_path):
    def classifier(name: str, state_dim: int):
        cfg = SuccessNetConfig(cameras=("agentview",), image_size=32, feature_dim=8, hidden=8, state_dim=state_dim)
        return save_success_classifier(tmp_path / name, SuccessNet(cfg))

    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=random.randint(150, 200))
    try:
        with pytest.raises(RoboRewardError, match=r"clf_state reads 18 values of observation.state besides its "
                                                  r"cameras; the reward server gives models camera frames only"):
            start_reward_server(classifier("clf_state", 18), context)
        start_reward_server(classifier("clf_frames", 0), context).destroy_node()  # frames alone: it starts
    finally:
        rclpy.shutdown(context=context)
