"""Reward serving only: camera nodes + the reward server.

  ros2 launch robo_reward reward_server.launch.py hardware_config:=franka_panda reward:=hop reward_model:=/path/to/model \
      base_policy:=/path/to/base dataset:=/path/to/demos

Arguments: hardware_config and every field of ros_nodes.graph.StackOptions. Without ROS 2 launch:
`robo-reward ros up franka_panda --profile reward_server ...` runs the same nodes with the same parameters.
"""

from ros_nodes.launch_support import generate


def generate_launch_description():
    return generate("reward_server", default_config="franka_panda")
