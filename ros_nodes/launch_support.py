"""Shared body of the launch files in launch/: every StackOptions field becomes a launch argument,
and the node set comes from ros_nodes.graph — the same one `robo-reward ros up` runs."""

from __future__ import annotations

from dataclasses import fields

from ros_nodes.graph import StackOptions, node_set
from ros_nodes.runner import FASTDDS_PROFILE


def option_values(perform) -> StackOptions:
    """StackOptions from launch-argument strings (`perform(name)` returns one)."""
    values = {}
    for f in fields(StackOptions):
        raw = perform(f.name)
        if isinstance(f.default, bool):
            values[f.name] = raw.strip().lower() in ("true", "1", "yes")
        else:
            values[f.name] = int(raw) if isinstance(f.default, int) else raw
    return StackOptions(**values)


def generate(profile: str, default_config: str):
    from launch.actions import (
        DeclareLaunchArgument,
        OpaqueFunction,
        SetEnvironmentVariable,
    )
    from launch.substitutions import EnvironmentVariable, LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context):
        def perform(name):
            return LaunchConfiguration(name).perform(context)

        specs = node_set(profile, perform("hardware_config"), option_values(perform))
        return [Node(package="robo_reward", executable=s.executable, name=s.name, parameters=[s.parameters],
                     output="screen") for s in specs]

    arguments = [DeclareLaunchArgument("hardware_config", default_value=default_config,
                                       description="hardware config YAML or shipped name")]
    arguments += [DeclareLaunchArgument(f.name, default_value=str(f.default)) for f in fields(StackOptions)]
    profile_file = EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", default_value=str(FASTDDS_PROFILE))
    return LaunchDescription([SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", profile_file), *arguments,
                              OpaqueFunction(function=nodes)])
