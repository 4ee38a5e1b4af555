"""Starting stack nodes by hand: the reward server refuses, at start and by name, a model it cannot
feed (it gives models camera frames only, so a classifier that also reads observation.state would
score no frame and the learner would drop every transition); nodes given only a hardware config run
the episodes `ros up` would give them."""

from __future__ import annotations

import random

import numpy as np

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


def test_beside_an_actor_the_server_reads_once_per_control_step_from_the_frames_nearest_it(tmp_path):
    """20 Hz control beside a 30 Hz camera: one reading per observation the actor acted on, stamped
    with its time (what the learner joins), read from the frame nearest it by one stream — as the
    reward wrapper reads each control step's frame in `rl train` — not one per camera frame.
    Announcements without an integer episode are counted and skipped."""
    import threading
    import time

    from rclpy.executors import SingleThreadedExecutor
    from reward_helpers import moving_square_frames, save_tiny_open_clip

    from robo_reward.rewards.registry import load_reward_model
    from robo_reward.runtime.reward_server import RewardServerCore, Sample
    from ros_nodes.common import OBSERVATIONS_TOPIC, REWARD_TOPIC, SENSOR_PUB, named_values, read_named_values, \
        rgb_to_image, to_sec
    from ros_nodes.runner import BackgroundNode
    from sensor_msgs.msg import Image, JointState

    model_dir = save_tiny_open_clip(tmp_path / "clip")
    frames = moving_square_frames(12)
    frame_stamps = [100.0 + k / 30 for k in range(12)]
    observed = [100.0 + j / 20 + 0.004 for j in range(7)]
    domain = random.randint(150, 200)
    context = rclpy.context.Context()
    rclpy.init(context=context, domain_id=domain)
    peer = BackgroundNode("actor_and_camera", domain)
    readings: dict[float, dict] = {}
    peer.node.create_subscription(JointState, REWARD_TOPIC, lambda m: readings.__setitem__(
        round(to_sec(m.header.stamp), 6), read_named_values(m)), 50)
    camera = peer.node.create_publisher(Image, "/sim/cameras/agentview/image_raw", SENSOR_PUB)
    observations = peer.node.create_publisher(JointState, OBSERVATIONS_TOPIC, 50)
    server = start_reward_server(model_dir, context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(server)
    spinning = threading.Thread(target=executor.spin, daemon=True)
    spinning.start()
    try:
        time.sleep(1.0)  # discovery
        for bad in ({"episode": float("nan")}, {"episode": 2.5}, {"step": 1.0}):  # each counted, none stops it
            observations.publish(named_values(99.0, bad))
        events = sorted([(s, "frame", k) for k, s in enumerate(frame_stamps)] +
                        [(s - 0.01, "observation", j) for j, s in enumerate(observed)])  # announced before its frame
        for _, kind, i in events:
            if kind == "frame":
                camera.publish(rgb_to_image(frames[i], frame_stamps[i]))
            else:
                observations.publish(named_values(observed[i], {"episode": 3}))
            time.sleep(0.03)
        deadline = time.monotonic() + 20.0
        while len(readings) < len(observed) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # nothing more comes
    finally:
        server.running = False
        executor.shutdown()
        server.destroy_node()
        peer.close()
        rclpy.shutdown(context=context)
    assert sorted(readings) == [round(s, 6) for s in observed]
    assert server.counts["bad_messages"] == 3 and server.counts["inference_errors"] == 0
    nearest = [int(np.argmin(np.abs(np.array(frame_stamps) - s))) for s in observed]
    assert nearest == [0, 2, 3, 5, 6, 8, 9]
    stream = RewardServerCore(load_reward_model(model_dir, device="cpu"), server.core.task)
    expected = [stream.process([Sample(s, {"agentview": frames[k]})])[0] for s, k in zip(observed, nearest)]
    np.testing.assert_allclose([readings[round(s, 6)]["progress"] for s in observed], [e.progress for e in expected],
                               atol=1e-5)
