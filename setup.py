"""ament_python entry point for `colcon build`: package metadata and the console scripts (one per
node) live in pyproject.toml; this adds what ROS 2 looks for under share/ (package marker,
package.xml, launch files, hardware configs) and the Python requirement (colcon cannot read it
from pyproject.toml)."""

from glob import glob

from setuptools import setup

setup(
    # Python 3.12: the system Python of Ubuntu 24.04, where ROS 2 Jazzy and Kilted run (rclpy is
    # shared with it), and what lerobot >= 0.5 requires
    python_requires=">=3.12,<3.13",
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/robo_reward"]),
        ("share/robo_reward", ["package.xml"]),
        ("share/robo_reward/launch", glob("launch/*.launch.py")),
        ("share/robo_reward/hardware_configs", glob("hardware_configs/*.yaml")),
    ],
)
