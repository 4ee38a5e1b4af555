"""Camera frames of a robosuite scene, drawn as `RenderSettings` say (robo_reward/envs/rendering.py).

Frames come from a render-only copy of the physics model, compiled from the same MJCF with lighter
visual meshes and posed from the physics state before each frame, so no render setting can change
what the simulator computes. One offscreen context per frame size draws every camera. The reduced
meshes are built once (quadric decimation) and cached under ~/.cache/robo_reward/meshes.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import os
import struct
import tempfile
import weakref
import xml.etree.ElementTree as ET
from pathlib import Path

import mujoco
import numpy as np

from robo_reward.envs.rendering import RenderSettings

MESH_CACHE_VERSION = 1  # part of every cached mesh's name: bump when the reduction changes


def mesh_cache_dir() -> Path:
    root = os.environ.get("ROBO_REWARD_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "robo_reward"
    return Path(root) / "meshes"


def read_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (N, 3) and triangles (M, 3) of an OBJ or STL (binary or ASCII) file; vertices shared
    between faces are merged (OBJ files split them where normals or texture coordinates differ)."""
    path = Path(path)
    data = path.read_bytes()
    if path.suffix.lower() == ".obj":
        verts, faces = [], []
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "v":
                verts.append([float(x) for x in parts[1:4]])
            elif parts[0] == "f":
                idx = [int(token.split("/")[0]) for token in parts[1:]]
                idx = [i - 1 if i > 0 else len(verts) + i for i in idx]
                faces += [[idx[0], idx[k], idx[k + 1]] for k in range(1, len(idx) - 1)]
        v, f = np.array(verts, float).reshape(-1, 3), np.array(faces, np.int64).reshape(-1, 3)
    elif path.suffix.lower() == ".stl":
        count = struct.unpack("<I", data[80:84])[0] if len(data) >= 84 else -1
        if len(data) == 84 + 50 * count:
            record = np.dtype([("normal", "<f4", 3), ("v", "<f4", (3, 3)), ("attr", "<u2")])
            v = np.frombuffer(data, record, count=count, offset=84)["v"].reshape(-1, 3).astype(float)
        else:
            v = np.array([[float(x) for x in line.split()[1:4]] for line in data.decode("utf-8", "replace").splitlines()
                          if line.strip().startswith("vertex")], float).reshape(-1, 3)
        f = np.arange(len(v)).reshape(-1, 3)
    else:
        raise ValueError(f"{path}: only OBJ and STL meshes can be reduced")
    unique, inverse = np.unique(np.round(v, 7), axis=0, return_inverse=True)
    f = inverse.reshape(-1)[f]
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 0] != f[:, 2])
    return unique, f[keep]


def reduced_mesh(path: str | Path, max_faces: int) -> Path | None:
    """An OBJ of the mesh at `path` with at most ~`max_faces` faces (cached), or None if it has no more."""
    import fast_simplification

    source = Path(path)
    digest = hashlib.sha256(source.read_bytes() + fast_simplification.__version__.encode()).hexdigest()[:20]
    out = mesh_cache_dir() / f"{digest}_{max_faces}_v{MESH_CACHE_VERSION}.obj"
    if out.is_file():
        return out
    verts, faces = read_mesh(source)
    if len(faces) <= max_faces:
        return None
    verts, faces = fast_simplification.simplify(verts.astype(np.float32), faces.astype(np.int32),
                                                target_count=max_faces)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)  # another process may be writing it too
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(f"v {x:.7g} {y:.7g} {z:.7g}\n" for x, y, z in verts))
        handle.write("".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in faces))
    os.replace(tmp, out)
    return out


def visual_only_meshes(model: mujoco.MjModel) -> set[str]:
    """Names of the meshes only non-colliding geoms use: reducing them cannot touch contacts."""
    users: dict[int, list[bool]] = {}
    for g in range(model.ngeom):
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_MESH:
            users.setdefault(int(model.geom_dataid[g]), []).append(
                model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0)
    return {mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_MESH, i) for i, visual in users.items() if all(visual)}


def render_model(xml: str, physics: mujoco.MjModel, settings: RenderSettings) -> mujoco.MjModel:
    """The model frames are drawn from: `xml` (what `physics` was compiled from) with its visual
    meshes reduced, collision meshes hidden and multisampling as `settings` say."""
    if settings.mesh_faces:
        root = ET.fromstring(xml)
        visual = visual_only_meshes(physics)
        for mesh in root.iter("mesh"):
            if mesh.get("name") in visual and mesh.get("file", "").lower().endswith((".obj", ".stl")):
                reduced = reduced_mesh(mesh.get("file"), settings.mesh_faces)
                if reduced is not None:
                    mesh.set("file", str(reduced))
        xml = ET.tostring(root, encoding="unicode")
    model = mujoco.MjModel.from_xml_string(xml)
    if (model.nq, model.nmocap, model.nbody) != (physics.nq, physics.nmocap, physics.nbody):
        raise RuntimeError("the render model's bodies and joints differ from the physics model's")
    model.vis.quality.offsamples = settings.multisamples
    return model


def hidden_geoms(model: mujoco.MjModel, settings: RenderSettings) -> np.ndarray:
    """Which geoms are not drawn: the collision meshes unless `settings` ask for them."""
    colliding = (model.geom_type == mujoco.mjtGeom.mjGEOM_MESH) & ((model.geom_contype != 0) | (model.geom_conaffinity != 0))
    return colliding & (not settings.collision_meshes)


_LIVE: weakref.WeakSet[SceneRenderer] = weakref.WeakSet()


def _close_live_renderers() -> None:
    """Free offscreen contexts before the interpreter tears EGL down (mujoco's finalizers then fail
    noisily). Registered after the first context exists, so that it runs before mujoco's own exit
    hook (registered when EGL starts; exit hooks run last-registered first)."""
    for scene in list(_LIVE):
        scene.close()


class SceneRenderer:
    """Draws named cameras of a scene at a given size, posed from the physics state of the moment.
    Offscreen contexts are made on first use, in the thread that draws (an EGL context belongs to
    the thread that made it)."""

    FLAGS = {"shadows": mujoco.mjtRndFlag.mjRND_SHADOW, "reflections": mujoco.mjtRndFlag.mjRND_REFLECTION,
             "skybox": mujoco.mjtRndFlag.mjRND_SKYBOX}

    # what robosuite changes in its model while it runs: it hides its visualization sites, and
    # PickPlace places its target markers by moving bodies (geom poses are not copied: a reduced mesh
    # is centred on its own centroid)
    MODEL_FIELDS = ("body_pos", "body_quat", "geom_rgba", "site_rgba", "cam_pos", "cam_quat", "cam_fovy")

    def __init__(self, xml: str, physics: mujoco.MjModel, settings: RenderSettings):
        self.settings = settings
        self.physics = physics
        self.model = render_model(xml, physics, settings)
        self.data = mujoco.MjData(self.model)
        self._hidden = hidden_geoms(self.model, settings)
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        _LIVE.add(self)

    def _renderer(self, size: tuple[int, int]) -> mujoco.Renderer:
        if size not in self._renderers:
            height, width = size
            glob = self.model.vis.global_
            glob.offheight, glob.offwidth = max(glob.offheight, height), max(glob.offwidth, width)
            renderer = mujoco.Renderer(self.model, height, width)
            atexit.unregister(_close_live_renderers)
            atexit.register(_close_live_renderers)
            for name, flag in self.FLAGS.items():
                renderer.scene.flags[flag] = int(getattr(self.settings, name))
            self._renderers[size] = renderer
        return self._renderers[size]

    def frames(self, physics_data: mujoco.MjData, cameras: tuple[str, ...] | list[str],
               size: tuple[int, int]) -> dict[str, np.ndarray]:
        """uint8 (H, W, 3) frames, row 0 = top, one per camera, of the physics state `physics_data`."""
        for name in self.MODEL_FIELDS:
            getattr(self.model, name)[:] = getattr(self.physics, name)
        self.model.geom_rgba[self._hidden, 3] = 0.0  # MuJoCo does not draw fully transparent geoms
        d = self.data
        d.qpos[:] = physics_data.qpos
        d.mocap_pos[:] = physics_data.mocap_pos
        d.mocap_quat[:] = physics_data.mocap_quat
        mujoco.mj_kinematics(self.model, d)
        mujoco.mj_comPos(self.model, d)
        mujoco.mj_camlight(self.model, d)
        renderer = self._renderer(size)
        out = {}
        for cam in cameras:
            renderer.update_scene(d, camera=cam)
            out[cam] = renderer.render().copy()
        return out

    def close(self) -> None:
        for renderer in self._renderers.values():
            with contextlib.suppress(Exception):  # a context made by another thread may already be gone
                renderer.close()
        self._renderers.clear()
