"""ament_python entry point for `colcon build`: package metadata and the console scripts (one per
node) live in pyproject.toml; this adds what ROS 2 looks for under share/ (package marker,
package.xml, launch files, hardware configs)."""

from glob import glob

from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/robo_reward"]),
        ("share/robo_reward", ["package.xml"]),
        ("share/robo_reward/launch", glob("launch/*.launch.py")),
        ("share/robo_reward/hardware_configs", glob("hardware_configs/*.yaml")),
    ],
)
