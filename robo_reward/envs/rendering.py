"""How simulated camera frames are drawn: settings recorded with every dataset and reward model made
from simulated frames, because a model trained on frames drawn one way scores frames drawn another
way differently (shadows, aliasing and mesh detail all change pixels).

On a CPU machine the cost of a frame is the scene, not the pixels: the robosuite Lift scene has
~182k mesh faces, so a 64x64 frame costs about as much as a 128x128 one. The
default for learning (`fast`) draws without shadows, reflections, skybox or multisampling, with
every visual-only mesh reduced to at most 1000 faces; the collision meshes are drawn (14.6k faces
in Panda Lift), as robosuite draws them: without them the hop models' VOC dropped. Physics never
changes: frames come from a render-only copy of the model.
docs/conventions.md ("Camera frames") has the measured costs and what each setting does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


MIN_MESH_FACES = 100


@dataclass(frozen=True)
class RenderSettings:
    shadows: bool = False  # robosuite's scenes have no shadow-casting light: no effect there
    reflections: bool = False
    skybox: bool = False
    multisamples: int = 0  # MSAA samples per pixel of the offscreen buffer (robosuite's models ask 4)
    mesh_faces: int = 1000  # each visual mesh reduced to at most this many faces; 0: as shipped
    # also draw the collision meshes: robosuite draws them, partly through the visual ones (they tint
    # the Panda blue); a hop model's VOC drops ~0.08 on frames without them (docs/BENCHMARKS.md)
    collision_meshes: bool = True

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "bool" and not isinstance(value, bool):
                raise ValueError(f"render setting {f.name} must be true or false, got {value!r}")
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"render setting {f.name} must be a whole number >= 0, got {value!r}")
        if 0 < self.mesh_faces < MIN_MESH_FACES:  # fewer: MuJoCo finds small parts' meshes without volume
            raise ValueError(f"render setting mesh_faces must be 0 (meshes as shipped) or at least {MIN_MESH_FACES}, "
                             f"got {self.mesh_faces}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "render settings") -> "RenderSettings":
        """From a recorded dict; `where` (a file and field) names the source in errors."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where}: expected a mapping of {sorted(f.name for f in fields(cls))}, got {data!r}")
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{where}: unknown render setting(s) {unknown}; known: {sorted(f.name for f in fields(cls))}")
        try:
            return cls(**data)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

    def describe(self) -> str:
        preset = next((name for name, s in RENDER_PRESETS.items() if s == self), None)
        return preset or ", ".join(f"{k}={v}" for k, v in self.to_dict().items())


RENDER_PRESETS = {
    "fast": RenderSettings(),
    # as robosuite draws its scenes: what datasets recorded before render settings were recorded hold
    "robosuite": RenderSettings(shadows=True, reflections=True, skybox=True, multisamples=4, mesh_faces=0),
}
DEFAULT_RENDER = RENDER_PRESETS["fast"]
RENDER_KEY = "render"  # the env spec's field


def recorded_render(spec: Mapping[str, Any], where: str) -> RenderSettings | None:
    """The render settings an env spec (a dataset's, a policy's, a run's) records; None if it has no
    cameras or its cameras are a real robot's (no simulated task). Simulated cameras without recorded
    settings were drawn as robosuite draws them (specs from before this field)."""
    if not spec.get("cameras") or "task" not in spec:
        return None
    if RENDER_KEY not in spec:
        return RENDER_PRESETS["robosuite"]
    return RenderSettings.from_dict(spec[RENDER_KEY], f"{where}: field {RENDER_KEY!r}")


def spec_with_render(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """`spec` with the render settings it records written out (see recorded_render)."""
    render = recorded_render(spec, where)
    return dict(spec) if render is None else {**spec, RENDER_KEY: render.to_dict()}


def common_render(recorded: Iterable[dict | None]) -> dict | None:
    """The render settings all of `recorded` share, ignoring None (frames from a camera or a video);
    ValueError naming both when two differ (a model cannot be trained on, or score, both)."""
    distinct = []
    for item in recorded:
        if item is not None and item not in distinct:
            distinct.append(item)
    if len(distinct) > 1:
        names = [RenderSettings.from_dict(d).describe() for d in distinct[:2]]
        raise ValueError(f"frames drawn with render settings {names[0]!r} and {names[1]!r}")
    return distinct[0] if distinct else None


def render_mismatch(model: str, model_render: dict | None, frames_render: dict | None, frames: str) -> str | None:
    """Why reward model `model` must not score frames drawn as `frames_render` (by `frames`), or None."""
    if model_render is None or frames_render is None or model_render == frames_render:
        return None
    return (f"reward model {model} was trained on frames drawn as {RenderSettings.from_dict(model_render).describe()!r}, "
            f"but {frames} has them drawn as {RenderSettings.from_dict(frames_render).describe()!r}: draw them as the "
            "model's were (`demos collect --render`, a sim robot config's sim.render) or train it on frames drawn this way")


def parse_render(text: str, what: str = "--render") -> RenderSettings:
    """A command line's --render (or a config's `what`): a preset name, or a preset with overrides
    (`fast,shadows=true`)."""
    name, *overrides = [part.strip() for part in text.split(",")]
    if name not in RENDER_PRESETS:
        raise ValueError(f"{what}: unknown preset {name!r}; choose one of {sorted(RENDER_PRESETS)} "
                         f"(optionally followed by ,key=value overrides)")
    values = RENDER_PRESETS[name].to_dict()
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or key not in values:
            raise ValueError(f"{what}: {item!r} is not key=value with key one of {sorted(values)}")
        lowered = raw.strip().lower()
        if isinstance(values[key], bool):
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError(f"{what}: {key} must be true or false, got {raw!r}")
            values[key] = lowered in ("true", "1")
        else:
            try:
                values[key] = int(lowered)
            except ValueError:
                raise ValueError(f"{what}: {key} must be a whole number, got {raw!r}") from None
    return RenderSettings.from_dict(values, what)
