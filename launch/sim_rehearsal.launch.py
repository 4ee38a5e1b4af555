"""Sim-to-real rehearsal: the sim robot behind real-driver topics + reward, actor, learner, safety, reset, recorder.

  ros2 launch robo_reward sim_rehearsal.launch.py hardware_config:=sim_panda_lift reward:=hop reward_model:=/path/to/model \
      base_policy:=/path/to/base dataset:=/path/to/demos

Arguments: hardware_config and every field of ros_nodes.graph.StackOptions. Without ROS 2 launch:
`robo-reward ros up sim_panda_lift --profile sim_rehearsal ...` runs the same nodes with the same parameters.
"""

from ros_nodes.launch_support import generate


def generate_launch_description():
    return generate("sim_rehearsal", default_config="sim_panda_lift")
