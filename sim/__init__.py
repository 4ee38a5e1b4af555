"""Simulation layer: robosuite tasks behind the project's Gymnasium contract (docs/conventions.md).

robosuite is imported lazily (when an environment is built), so importing ``sim`` is cheap.
"""

from sim.demonstrators import DEMONSTRATORS, make_demonstrator
from sim.robosuite_env import (
    ROBOTS,
    TASKS,
    RobosuiteEnv,
    make_env,
    resolve_robot,
    resolve_task,
    task_scene,
)

__all__ = [
    "DEMONSTRATORS",
    "ROBOTS",
    "TASKS",
    "RobosuiteEnv",
    "make_demonstrator",
    "make_env",
    "resolve_robot",
    "resolve_task",
    "task_scene",
]
