"""Which simulated scene an env spec (a dataset's or a policy's) was made in.

A task's scene can change between versions while its name stays (GR1 Lift's cube moved 0.2 m right
of the table's midline): a policy cloned from demonstrations in the old scene, evaluated in the new
one, would be scored on a task it never saw, silently. So simulated specs record their scene (the
task's keyword arguments to robosuite, sim/robosuite_env.py `task_scene`) and the simulator refuses
a spec recorded in another scene.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SCENE_KEY = "scene"


def spec_with_scene(spec: Mapping[str, Any]) -> dict[str, Any]:
    """`spec` with the scene it was made in written out: a simulated spec (one that names a task) from
    before scenes were recorded was made in robosuite's scenes with no overrides, `{}`."""
    if "task" in spec and SCENE_KEY not in spec:
        return {**spec, SCENE_KEY: {}}
    return dict(spec)
