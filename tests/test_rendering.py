"""Camera frames as the render settings say (sim/rendering.py): the robosuite preset draws exactly what
robosuite draws, the fast one differs where it says and nowhere in the physics, and datasets record
how their frames were drawn."""

from __future__ import annotations

import json
import os
from dataclasses import replace

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

pytest.importorskip("robosuite")

from robo_reward.cli import main
from robo_reward.data.lerobot_io import ENV_SPEC_FILE, read_env_spec
from robo_reward.envs.rendering import DEFAULT_RENDER, RENDER_PRESETS, RenderSettings, parse_render, recorded_render
from robo_reward.errors import DatasetError
from sim import make_env
from sim.rendering import read_mesh, reduced_mesh

CAMS = ("agentview", "robot0_eye_in_hand")


def _frames_after(render, seed=3, steps=5, size=(48, 40), task="lift", robot="Panda", cameras=CAMS):
    env = make_env(task, robot, cameras=cameras, image_size=size, render=render, seed=0)
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(seed).uniform(-1, 1, (steps, env.action_dim)).astype(np.float32)
    states = [obs["observation.state"]]
    for a in actions:
        obs, *_ = env.step(a)
        states.append(obs["observation.state"])
    return env, obs, np.stack(states)


@pytest.mark.parametrize("task, robot, cameras", [("lift", "Panda", CAMS), ("can", "Panda", CAMS),
                                                 ("lift", "GR1", ("frontview", "robot0_eye_in_right_hand"))])
def test_the_robosuite_preset_draws_exactly_what_robosuite_draws(task, robot, cameras):
    """Our renderer on the render-only model copy, posed from the physics state, against robosuite's
    own offscreen renderer on the physics model: the same pixels (Can: its target markers are bodies
    robosuite moves at every reset; GR1: a humanoid's two arms and hands)."""
    from robosuite.utils.binding_utils import MjRenderContextOffscreen

    env, obs, _ = _frames_after(RENDER_PRESETS["robosuite"], task=task, robot=robot, cameras=cameras)
    sim = env.unwrapped_robosuite.sim
    sim.add_render_context(MjRenderContextOffscreen(sim, device_id=-1))
    for cam in cameras:
        theirs = sim.render(width=40, height=48, camera_name=cam)[::-1]  # OpenGL rows: bottom first
        assert obs[f"observation.images.{cam}"].shape == (48, 40, 3)
        np.testing.assert_array_equal(obs[f"observation.images.{cam}"], theirs)
    env.close()


def test_render_settings_change_frames_and_never_the_physics():
    """Each setting that matters in a robosuite scene changes the frames (its one light casts no
    shadows, so `shadows` does not); no setting changes a seeded episode's states."""
    variants = {"fast": DEFAULT_RENDER, "reflections": replace(DEFAULT_RENDER, reflections=True),
                "multisamples": replace(DEFAULT_RENDER, multisamples=4), "full meshes": replace(DEFAULT_RENDER, mesh_faces=0),
                "no collision meshes": replace(DEFAULT_RENDER, collision_meshes=False), "robosuite": RENDER_PRESETS["robosuite"]}
    runs = {name: _frames_after(render) for name, render in variants.items()}
    _, _, no_cameras = _frames_after(None, size=(8, 8))
    np.testing.assert_array_equal(no_cameras, runs["fast"][2])
    frames = {}
    for name, (env, obs, states) in runs.items():
        np.testing.assert_array_equal(states, runs["fast"][2], err_msg=name)  # same seeded episode, same states
        assert set(k for k in obs if "images" in k) == {f"observation.images.{c}" for c in CAMS}
        frames[name] = np.concatenate([obs[f"observation.images.{c}"] for c in CAMS]).astype(int)
        env.close()
    change = {name: np.abs(frame - frames["fast"]).mean() for name, frame in frames.items()}
    assert all(change[name] > 0.05 for name in variants if name != "fast"), change
    # the fast preset still shows the same scene: a few grey levels from robosuite's on average
    assert change["robosuite"] < 20, change


def test_reduced_meshes_have_the_faces_asked_and_are_built_once(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBO_REWARD_CACHE", str(tmp_path / "cache"))
    # a finely tessellated sphere as an OBJ with split vertices (as exporters write them)
    u, v = np.meshgrid(np.linspace(0, np.pi, 40), np.linspace(0, 2 * np.pi, 80), indexing="ij")
    pts = np.stack([np.sin(u) * np.cos(v), np.sin(u) * np.sin(v), np.cos(u)], -1).reshape(-1, 3)
    idx = np.arange(40 * 80).reshape(40, 80)
    quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
    src = tmp_path / "sphere.obj"
    src.write_text("".join(f"v {x} {y} {z}\n" for x, y, z in pts) + "".join(f"f {a+1}/1/1 {b+1}/2/2 {c+1}/3/3 {d+1}/4/4\n"
                                                                        for a, b, c, d in quads))
    verts, faces = read_mesh(src)
    # quads split in two, degenerate ones at the poles dropped, vertices shared by position merged
    assert 0.95 * 2 * len(quads) < len(faces) <= 2 * len(quads) and len(verts) < len(pts)
    out = reduced_mesh(src, 500)
    rv, rf = read_mesh(out)
    assert 400 <= len(rf) <= 520 and np.allclose(np.linalg.norm(rv, axis=1), 1.0, atol=0.05)
    stamp = out.stat().st_mtime_ns
    assert reduced_mesh(src, 500) == out and out.stat().st_mtime_ns == stamp  # cached, not rebuilt
    assert reduced_mesh(src, 10**6) is None  # already small enough: the file as shipped


def test_settings_parse_and_bad_recorded_settings_name_the_file_and_field(tmp_path):
    assert parse_render("fast") == DEFAULT_RENDER
    assert parse_render("robosuite,shadows=false").shadows is False
    assert parse_render("fast,mesh_faces=0").mesh_faces == 0
    with pytest.raises(ValueError, match="multisamples must be a whole number >= 0"):
        RenderSettings(multisamples=-1)
    with pytest.raises(ValueError, match="mesh_faces must be 0 .meshes as shipped. or at least 100"):
        RenderSettings(mesh_faces=20)
    root = tmp_path / "data"
    root.mkdir()
    spec = {"task": "lift", "robot": "Panda", "cameras": ["agentview"], "observation_format": 2}
    (root / ENV_SPEC_FILE).write_text(json.dumps(spec))
    # recorded before render settings were: drawn as robosuite draws
    assert RenderSettings.from_dict(read_env_spec(root)["render"]) == RENDER_PRESETS["robosuite"]
    # a real robot's cameras (no simulated task) carry no render settings
    assert recorded_render({"hardware_config": "franka_panda", "cameras": ["wrist"]}, "x") is None
    (root / ENV_SPEC_FILE).write_text(json.dumps({**spec, "render": {"shadows": "yes"}}))
    with pytest.raises(DatasetError, match=r"robo_reward_env.json: field 'render': render setting shadows must be true"):
        read_env_spec(root)
    (root / ENV_SPEC_FILE).write_text(json.dumps({**spec, "render": {"fog": True}}))
    with pytest.raises(DatasetError, match=r"unknown render setting\(s\) \['fog'\]"):
        read_env_spec(root)


def test_a_dataset_records_how_its_frames_were_drawn(tmp_path):
    out = tmp_path / "demos"
    assert main(["demos", "collect", "--episodes", "1", "--horizon", "5", "--cameras", "agentview", "--image-size", "32",
                 "--render", "fast,shadows=true", "--out", str(out), "--quiet"]) == 0
    recorded = json.loads((out / ENV_SPEC_FILE).read_text())["render"]
    assert RenderSettings.from_dict(recorded) == replace(DEFAULT_RENDER, shadows=True)


def test_a_sim_robot_config_says_how_its_frames_are_drawn(tmp_path, capsys):
    import yaml

    from robo_reward.config.hardware import load_hardware_config, resolve_config_path

    assert load_hardware_config("sim_panda_lift").sim.render_settings() == DEFAULT_RENDER
    data = yaml.safe_load(resolve_config_path("sim_panda_lift").read_text())
    data["sim"]["render"] = "fast,fog=true"
    bad = tmp_path / "sim_foggy.yaml"
    bad.write_text(yaml.safe_dump(data))
    assert main(["ros", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "sim.render" in err and "'fog=true' is not key=value with key one of" in err, err
