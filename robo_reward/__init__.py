"""robo_reward: reward models and residual off-policy RL fine-tuning for real robots.

The library never imports rclpy; ROS 2 adapters live in ros_nodes/.
"""

__version__ = "0.1.0"
