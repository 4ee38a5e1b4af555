"""A real humanoid: camera nodes + reward, actor, learner, safety, reset, recorder (the vendor's driver runs separately).

  ros2 launch robo_reward real_humanoid.launch.py hardware_config:=gr1 reward:=hop reward_model:=/path/to/model \
      base_policy:=/path/to/base dataset:=/path/to/demos

Arguments: hardware_config and every field of ros_nodes.graph.StackOptions. Without ROS 2 launch:
`robo-reward ros up gr1 --profile real_humanoid ...` runs the same nodes with the same parameters.
"""

from ros_nodes.launch_support import generate


def generate_launch_description():
    return generate("real_humanoid", default_config="gr1")
