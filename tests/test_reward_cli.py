"""`robo-reward reward train | eval | score` on real simulated Lift episodes with camera videos."""

import json
from pathlib import Path

import numpy as np
import pytest
from reward_helpers import save_tiny_open_clip

from robo_reward.cli import main
from robo_reward.data.episodes import load_episodes, read_video
from robo_reward.data.lerobot_io import read_episode_seeds
from robo_reward.rewards.registry import load_reward_model, reward_model_demo_seeds
from robo_reward.rewards.vision import MANIFEST
from robo_reward.rl.policies import policy_demo_seeds, read_policy_manifest


def test_dataset_episodes_decode_with_labels(camera_demos):
    episodes = load_episodes(camera_demos)
    assert len(episodes) == 4
    for e in episodes:
        assert e.episode.cameras == ("agentview", "robot0_eye_in_hand")
        assert e.episode.frames["agentview"].shape == (80, 32, 32, 3)
        assert e.episode.task == "lift the red cube" and e.episode.state.shape[0] == 80
    outcomes = [e.succeeded for e in episodes]
    assert any(outcomes) and not all(outcomes), outcomes


def test_hop_train_eval_score_through_the_cli(camera_demos, tmp_path, capsys):
    first_success = next(i for i, e in enumerate(load_episodes(camera_demos)) if e.succeeded)
    hop = tmp_path / "hop"
    assert main(["reward", "train", "hop", "--dataset", str(camera_demos), "--episodes", str(first_success),
                 "--steps", "60", "--image-size", "32", "--out", str(hop), "--quiet", "--device", "cpu"]) == 0
    assert main(["reward", "eval", "--model", str(hop), "--dataset", str(camera_demos), "--out",
                 str(tmp_path / "eval"), "--quiet", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "eval" / "reward_eval.json").read_text())
    assert report["summary"]["episodes"] == 4 and "voc_mean" in report["summary"]
    assert "accuracy" in report["summary"]["success"] and "preference_accuracy" in report["summary"]
    assert (tmp_path / "eval" / "progress.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["reward", "score", str(camera_demos), "--episode", "1", "--model", str(hop), "--out",
                 str(tmp_path / "score"), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    scores = json.loads((tmp_path / "score" / "scores.json").read_text())
    assert len(scores["progress"]) == 80 and len(scores["reward"]) == 79
    assert f"{scores['progress'][79]:9.4f}" in printed
    # the reward printed is the policy-invariant shaping of the printed progress
    phi = np.array(scores["progress"])
    np.testing.assert_allclose(scores["reward"], (phi[1:] >= 0.95) + 0.99 * phi[1:] - phi[:-1], atol=1e-5)


def test_classifier_and_clip_score_a_video_file(camera_demos, tmp_path, capsys):
    import av

    clf = tmp_path / "clf"
    # two datasets (e.g. demonstrations + labeled rollouts) train one classifier
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), str(camera_demos), "--cameras",
                 "agentview", "--steps", "40", "--image-size", "32", "--out", str(clf), "--quiet",
                 "--device", "cpu"]) == 0
    log = json.loads((clf / "robo_reward_reward.json").read_text())["config"]["train_log"]
    assert log["frames"] == 2 * sum(e.episode.length for e in load_episodes(camera_demos, ["agentview"]))
    frames = load_episodes(camera_demos, ["agentview"], [0])[0].episode.frames["agentview"]
    video = tmp_path / "episode.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))
    assert read_video(video).shape == (80, 32, 32, 3)
    assert main(["reward", "score", str(video), "--task", "lift the red cube", "--model", str(clf),
                 "--shaping", "progress", "--out", str(tmp_path / "s1"), "--device", "cpu"]) == 0
    clip_dir = save_tiny_open_clip(tmp_path / "tiny-clip")
    assert main(["reward", "score", str(video), "--task", "lift the red cube", "--model", str(clip_dir),
                 "--out", str(tmp_path / "s-clip"), "--device", "cpu"]) == 0
    assert len(json.loads((tmp_path / "s-clip" / "scores.json").read_text())["progress"]) == 80
    capsys.readouterr()
    # bad inputs: one clear line, exit 2, nothing written
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all")
    assert main(["reward", "score", str(tmp_path / "bad.mp4"), "--task", "lift", "--model", str(clf),
                 "--out", str(tmp_path / "s2"), "--device", "cpu"]) == 2
    assert "bad.mp4: cannot decode video" in capsys.readouterr().err and not (tmp_path / "s2").exists()
    assert main(["reward", "score", str(video), "--task", "   ", "--model", str(clf),
                 "--out", str(tmp_path / "s3"), "--device", "cpu"]) == 2
    assert "task text is empty" in capsys.readouterr().err and not (tmp_path / "s3").exists()
    assert main(["reward", "score", str(video), "--model", str(clf), "--out", str(tmp_path / "s4")]) == 2
    assert "--task is required" in capsys.readouterr().err
    assert main(["reward", "eval", "--model", str(tmp_path / "missing"), "--dataset", str(camera_demos),
                 "--out", str(tmp_path / "e2")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), str(camera_demos),
                 "--episodes", "0", "--out", str(tmp_path / "c2")]) == 2
    assert "single --dataset" in capsys.readouterr().err and not (tmp_path / "c2").exists()
    model = load_reward_model(clf, device="cpu")
    assert model.cameras == ("agentview",)


def test_hop_reward_drives_residual_rl_and_resumes(camera_demos, lift_demos, tmp_path, capsys, monkeypatch):
    first_success = next(i for i, e in enumerate(load_episodes(camera_demos)) if e.succeeded)
    hop = tmp_path / "hop"
    assert main(["reward", "train", "hop", "--dataset", str(camera_demos), "--episodes", str(first_success),
                 "--steps", "30", "--image-size", "32", "--out", str(hop), "--quiet", "--device", "cpu"]) == 0
    # as if trained on another dataset: the policy learns from the reward's episodes too, and `eval` must
    # know their initial states
    manifest = json.loads((hop / MANIFEST).read_text())
    (hop / MANIFEST).write_text(json.dumps({**manifest, "demo_seeds": [4_000_000]}))
    run = tmp_path / "run"
    common = ["--quiet", "--device", "cpu", "--set", "learning_starts=60", "--set", "critic_warmup_updates=20",
              "--set", "batch_size=32", "--set", "utd_ratio=1"]
    monkeypatch.chdir(tmp_path)  # the model given relative to here; the run resumes from elsewhere
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward", "hop",
                 "--reward-model", "hop", "--steps", "120", "--eval-every", "120", "--eval-episodes", "1",
                 "--out", str(run), *common]) == 0
    config = json.loads((run / "run_config.json").read_text())
    assert config["reward"] == {"source": "hop", "model": str(hop.resolve()), "shaping": "policy-invariant"}
    assert policy_demo_seeds(read_policy_manifest(run)) == sorted([*read_episode_seeds(camera_demos), 4_000_000])
    assert config["env"]["terminate_on_success"] is False and "robot0_eye_in_hand" in config["env"]["cameras"]
    metrics = json.loads((run / "metrics.json").read_text())
    returns = [e["return"] for e in metrics["episodes"]]
    assert len(returns) >= 1 and all(np.isfinite(returns)) and any(r != 0 for r in returns)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert main(["rl", "train", "--resume", "--steps", "200", "--out", str(run), "--quiet", "--device", "cpu"]) == 0
    assert json.loads((run / "metrics.json").read_text())["episodes"][-1]["env_step"] >= 200
    capsys.readouterr()
    # wrong combinations fail before anything is written
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward", "hop",
                 "--out", str(tmp_path / "r1"), "--quiet"]) == 2
    assert "needs --reward-model" in capsys.readouterr().err
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward",
                 "success-classifier", "--reward-model", str(hop), "--out", str(tmp_path / "r2"), "--quiet"]) == 2
    assert "is a 'hop' reward model" in capsys.readouterr().err
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(lift_demos), "--reward", "hop",
                 "--reward-model", str(hop), "--out", str(tmp_path / "r3"), "--quiet"]) == 2
    assert "no camera videos" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("r1", "r2", "r3"))


def test_augment_builds_a_scored_training_set_and_vlm_eval_reports_mae(camera_demos, tmp_path, capsys):
    from reward_helpers import FakeEndpoint

    from robo_reward.data.augment import load_training_set

    out = tmp_path / "set"
    assert main(["reward", "augment", "--dataset", str(camera_demos), "--camera", "agentview",
                 "--counterfactual", "open the drawer=1", "--counterfactual", "push the cube=3",
                 "--out", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    successes = sum(e.succeeded for e in load_episodes(camera_demos))
    assert len(rows) == successes * 6  # original + 3 clips + 2 counterfactuals
    assert {r["kind"] for r in rows} == {"original", "temporal_clip", "counterfactual"}
    assert all(r["score"] == 5 for r in rows if r["kind"] == "original")
    assert all(1 <= r["score"] <= 4 for r in rows if r["kind"] == "temporal_clip")
    assert all(r["answer"] == f"ANSWER: {r['score']}" and r["frame_indices"][-1] == r["end_frame"] - 1 for r in rows)
    items = load_training_set(out)
    assert len(items) == len(rows) and items[0].episode.length == rows[0]["end_frame"]
    # a VLM reward behind an OpenAI-compatible endpoint, configured by a reward-model directory
    server = FakeEndpoint()
    try:
        server.reply = "ANSWER: 5"
        vlm = tmp_path / "vlm"
        vlm.mkdir()
        (vlm / "robo_reward_reward.json").write_text(json.dumps({"kind": "vlm", "config": {
            "backend": "openai", "endpoint": {"base_url": server.url}, "progress": {"camera": "agentview"}}}))
        assert main(["reward", "eval", "--model", str(vlm), "--dataset", str(out), "--out", str(tmp_path / "ev"),
                     "--quiet"]) == 0
        summary = json.loads((tmp_path / "ev" / "reward_eval.json").read_text())["summary"]
        expected = np.mean([abs(5 - r["score"]) for r in rows])
        assert summary["score_mae"] == pytest.approx(expected)
    finally:
        server.stop()
    capsys.readouterr()
    assert main(["reward", "augment", "--dataset", str(camera_demos), "--counterfactual", "open=7",
                 "--out", str(tmp_path / "bad"), "--quiet"]) == 2
    assert "score in 1..5" in capsys.readouterr().err and not (tmp_path / "bad").exists()


def test_rapl_trains_from_simulator_preferences(camera_demos, tmp_path):
    out = tmp_path / "rapl"
    assert main(["reward", "train", "rapl", "--dataset", str(camera_demos), "--cameras", "agentview",
                 "--steps", "2", "--image-size", "32", "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    model = load_reward_model(out, device="cpu")
    assert model.name == "rapl" and model.cameras == ("agentview",)
    assert main(["reward", "eval", "--model", str(out), "--dataset", str(camera_demos), "--out",
                 str(tmp_path / "ev"), "--quiet", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "ev" / "reward_eval.json").read_text())["summary"]
    assert 0.0 <= summary["preference_accuracy"] <= 1.0 and summary["no_reward"] == 0


def test_progress_success_pairs_hop_progress_with_classifier_success(camera_demos, tmp_path, capsys):
    import shutil

    from robo_reward.rewards import RewardSpec, reward_rule
    from robo_reward.rewards.registry import ModelRewardSource
    from robo_reward.rewards.shaping import RewardReading
    from robo_reward.runtime.reward_server import RewardServerCore, Sample

    episodes = load_episodes(camera_demos)
    first_success = next(i for i, e in enumerate(episodes) if e.succeeded)
    models = tmp_path / "models"
    common = ["--image-size", "32", "--quiet", "--device", "cpu"]
    assert main(["reward", "train", "hop", "--dataset", str(camera_demos), "--episodes", str(first_success),
                 "--steps", "30", "--out", str(models / "hop"), *common]) == 0
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--cameras", "agentview",
                 "--steps", "40", "--out", str(models / "clf"), *common]) == 0
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(models / "clf"),
                 "--out", str(models / "both")]) == 0
    # the tree moves as a whole (paths are stored relative to the combined directory)
    shutil.move(models, tmp_path / "moved")
    models = tmp_path / "moved"
    # each model records the initial states it learned from (the hop model: its one episode; the
    # classifier: all four); the combined one has its parts' seeds
    seeds = read_episode_seeds(camera_demos)
    assert reward_model_demo_seeds(models / "hop") == [seeds[first_success]]
    assert reward_model_demo_seeds(models / "clf") == reward_model_demo_seeds(models / "both") == sorted(seeds)
    hop, clf = load_reward_model(models / "hop", "cpu"), load_reward_model(models / "clf", "cpu")
    both = load_reward_model(models / "both", "cpu")
    assert both.name == "progress-success" and both.cameras == ("agentview", "robot0_eye_in_hand")
    episode = episodes[first_success].episode
    result = both.score_episode(episode)
    np.testing.assert_array_equal(result.progress, hop.score_episode(episode).progress)
    np.testing.assert_array_equal(result.success, clf.score_episode(episode).success)
    # evaluation: episodes ranked by the success call first; per-frame success calls judged against the frames
    from robo_reward.rewards.evaluation import evaluate_reward_model

    summary, rows, results = evaluate_reward_model(both, episodes, progress=False)
    called = np.concatenate([r.success for r in results])
    shown = np.concatenate([e.frame_success for e in episodes])
    assert not any(e.frame_success[0] for e in episodes) and shown.any()
    assert summary["step_success"]["accuracy"] == pytest.approx(np.mean(called == shown))
    assert summary["step_success"]["recall"] == pytest.approx((called & shown).sum() / shown.sum())
    assert sum(row["false_success_frames"] for row in rows) == (called & ~shown).sum()

    # every consumer takes r_gold from the classifier: `reward score`, the RL reward source, the ROS reward server
    capsys.readouterr()
    assert main(["reward", "score", str(camera_demos), "--episode", str(first_success), "--model",
                 str(models / "both"), "--out", str(tmp_path / "score"), "--device", "cpu"]) == 0
    scores = json.loads((tmp_path / "score" / "scores.json").read_text())
    phi, success = np.array(scores["progress"]), np.array(scores["success"])
    np.testing.assert_array_equal(success, result.success)
    expected = success[1:] + 0.99 * phi[1:] - phi[:-1]
    np.testing.assert_allclose(scores["reward"], expected, atol=1e-5)
    source = ModelRewardSource(both)
    rule = reward_rule(RewardSpec("progress-success", model=str(models / "both")), source, 0.99)
    readings = source.episode_readings(episode)
    np.testing.assert_allclose([rule(a, b) for a, b in zip(readings, readings[1:])][:-1], expected, atol=1e-5)
    # the ROS reward server publishes the same readings frame by frame; the learner's rule makes the reward
    core = RewardServerCore(both, episode.task)
    frames = episode.frames
    out = core.process([Sample(float(t), {c: frames[c][t] for c in frames}) for t in range(12)])
    assert all(o.ok for o in out)
    served = [RewardReading(o.progress, o.success, o.reward) for o in out]
    np.testing.assert_allclose([rule(a, b) for a, b in zip(served, served[1:])], expected[:11], atol=1e-5)
    run = tmp_path / "run"
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward", "progress-success",
                 "--reward-model", str(models / "both"), "--steps", "90", "--eval-every", "90", "--eval-episodes",
                 "1", "--out", str(run), "--quiet", "--device", "cpu", "--set", "learning_starts=60", "--set",
                 "critic_warmup_updates=5", "--set", "batch_size=16"]) == 0
    assert json.loads((run / "run_config.json").read_text())["reward"]["source"] == "progress-success"
    returns = [e["return"] for e in json.loads((run / "metrics.json").read_text())["episodes"]]
    assert returns and all(np.isfinite(returns))

    # a success call that must hold 3 frames: batch and stream agree, single-frame flickers are gone
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(models / "clf"),
                 "--success-hold", "3", "--out", str(models / "held")]) == 0
    steady = load_reward_model(models / "held", "cpu")
    calls = clf.score_episode(episode).success
    expected_held = np.array([calls[max(0, t - 2):t + 1].all() and t >= 2 for t in range(len(calls))])
    np.testing.assert_array_equal(steady.score_episode(episode).success, expected_held)
    stream = steady.stream(episode.task)
    online = [stream.reset({c: frames[c][0] for c in frames})]
    online += [stream.step({c: frames[c][t] for c in frames}) for t in range(1, episode.length)]
    np.testing.assert_array_equal([s.success for s in online], expected_held)
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(models / "clf"),
                 "--success-hold", "0", "--out", str(tmp_path / "c0")]) == 2
    assert "--success-hold: 0 must be a positive whole number" in capsys.readouterr().err
    assert not (tmp_path / "c0").exists()

    # bad pairs fail with the path named, nothing written
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "c1")]) == 2
    assert "nope: not a reward model directory" in capsys.readouterr().err and not (tmp_path / "c1").exists()
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--cameras", "agentview",
                 "--steps", "2", "--out", str(tmp_path / "clf48"), "--image-size", "48", "--quiet",
                 "--device", "cpu"]) == 0
    assert main(["reward", "combine", "--progress", str(models / "hop"), "--success", str(tmp_path / "clf48"),
                 "--out", str(tmp_path / "c2")]) == 2
    assert "different image sizes" in capsys.readouterr().err and not (tmp_path / "c2").exists()


def _lerobot_train_reward_classifier(dataset, encoder, out, steps: int):
    """`lerobot-train --config_path` with a reward_classifier config, as HIL-SERL's guide has a LeRobot
    user train one (the image inputs are named in the config); returns the checkpoint lerobot saved."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    images = {f"observation.images.{camera}": {"type": "VISUAL", "shape": [3, 32, 32]}
              for camera in ("agentview", "robot0_eye_in_hand")}
    config = out.parent / f"{out.name}.json"
    config.write_text(json.dumps({
        "dataset": {"repo_id": f"local/{dataset.name}", "root": str(dataset)},
        "reward_model": {"type": "reward_classifier", "model_name": str(encoder), "num_cameras": 2, "device": "cpu",
                         "learning_rate": 1e-3, "input_features": images},
        "output_dir": str(out), "steps": steps, "batch_size": 32, "num_workers": 0, "save_freq": steps,
        "log_freq": 100, "seed": 0, "wandb": {"enable": False}}))
    log = out.parent / f"{out.name}.log"
    with open(log, "w") as output:
        proc = subprocess.run([str(Path(sys.executable).with_name("lerobot-train")), f"--config_path={config}"],
                              env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=output, stderr=subprocess.STDOUT)
    assert proc.returncode == 0, log.read_text()[-3000:]
    return out / "checkpoints" / "last" / "pretrained_model"


def test_a_lerobot_reward_classifier_is_a_success_source(camera_demos, tmp_path, capsys, monkeypatch):
    """lerobot-train trains LeRobot's own reward classifier on the camera demos (a tiny ResNet encoder
    built here: 32 px views give it the 4x4 feature map its spatial embedding needs). The checkpoint,
    exactly as lerobot saved it, calls success frames through `reward eval` far better than always
    saying "no" (F1 0), serves on the ROS reward server's core, and rewards `rl train --reward
    success-classifier`. An encoder that is not there, or that brings its own code, is a clear error."""
    import shutil

    import torch
    from transformers import ResNetConfig, ResNetModel

    from robo_reward.runtime.reward_server import RewardServerCore, Sample

    torch.manual_seed(0)
    encoder = tmp_path / "resnet"
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")
                ).save_pretrained(encoder)
    checkpoint = _lerobot_train_reward_classifier(camera_demos, encoder, tmp_path / "lerobot_train", 100)
    assert main(["reward", "eval", "--model", str(checkpoint), "--dataset", str(camera_demos), "--out",
                 str(tmp_path / "eval"), "--quiet", "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "eval" / "reward_eval.json").read_text())["summary"]
    assert summary["step_success"]["f1"] >= 0.6, summary

    model = load_reward_model(checkpoint, "cpu")
    assert model.name == "success-classifier" and model.cameras == ("agentview", "robot0_eye_in_hand")
    episode = next(e for e in load_episodes(camera_demos) if e.succeeded).episode
    served = RewardServerCore(model, episode.task).process(
        [Sample(float(t), {c: episode.frames[c][t] for c in episode.frames}) for t in range(episode.length)])
    np.testing.assert_array_equal([o.success for o in served], model.score_episode(episode).success)

    run = tmp_path / "run"
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward", "success-classifier",
                 "--reward-model", str(checkpoint), "--steps", "90", "--eval-every", "90", "--eval-episodes", "1",
                 "--out", str(run), "--quiet", "--device", "cpu", "--set", "learning_starts=60", "--set",
                 "critic_warmup_updates=5", "--set", "batch_size=16"]) == 0
    # the run records the checkpoint itself: lerobot's `last` link moves on when training goes on,
    # and a run's reward must not change under it
    assert json.loads((run / "run_config.json").read_text())["reward"] == {
        "source": "success-classifier", "model": str(checkpoint.resolve()), "shaping": "none"}
    assert checkpoint.resolve() != checkpoint.absolute()  # `last` is a link here

    moved = tmp_path / "moved"
    shutil.copytree(checkpoint, moved)
    config = json.loads((moved / "config.json").read_text())
    (moved / "config.json").write_text(json.dumps({**config, "model_name": "someorg/resnet10"}))
    capsys.readouterr()
    assert main(["reward", "eval", "--model", str(moved), "--dataset", str(camera_demos), "--out",
                 str(tmp_path / "e2"), "--quiet"]) == 2
    assert "image encoder 'someorg/resnet10' is not here" in capsys.readouterr().err
    shutil.copytree(encoder, moved / "encoder")
    assert load_reward_model(moved, "cpu").score_episode(episode).ok  # the checkpoint's own encoder/ copy
    encoder_config = json.loads((moved / "encoder" / "config.json").read_text())
    (moved / "encoder" / "config.json").write_text(json.dumps({**encoder_config, "auto_map": {
        "AutoModel": "modeling_evil.EvilModel"}}))
    monkeypatch.delenv("ROBO_REWARD_TRUST_MODEL_CODE", raising=False)
    assert main(["reward", "eval", "--model", str(moved), "--dataset", str(camera_demos), "--out",
                 str(tmp_path / "e3"), "--quiet"]) == 2
    assert "brings its own Python code" in capsys.readouterr().err and not (tmp_path / "e3").exists()


def test_reward_models_record_how_their_frames_were_drawn_and_refuse_frames_drawn_otherwise(camera_demos, tmp_path, capsys):
    """A model trained on frames drawn one way scores an env that draws them that way; frames drawn
    another way (another dataset, a demonstrations env, a combined partner) are refused in one line."""
    import shutil

    from robo_reward.envs.rendering import DEFAULT_RENDER, RENDER_PRESETS
    from robo_reward.errors import ConfigError
    from robo_reward.rewards.registry import ModelRewardSource
    from robo_reward.rl.runs import training_env_spec

    common = ["--image-size", "32", "--steps", "5", "--quiet", "--device", "cpu"]
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--out", str(tmp_path / "clf"),
                 *common]) == 0
    clf = load_reward_model(tmp_path / "clf", "cpu")
    assert clf.render_settings == DEFAULT_RENDER.to_dict()  # camera_demos: recorded with the default
    # the same frames, recorded as drawn the way robosuite draws (what datasets before render settings hold)
    old = tmp_path / "old_demos"
    shutil.copytree(camera_demos, old)
    spec = json.loads((old / "robo_reward_env.json").read_text())
    spec.pop("render")
    (old / "robo_reward_env.json").write_text(json.dumps(spec))
    first_success = next(i for i, e in enumerate(load_episodes(old)) if e.succeeded)
    assert main(["reward", "train", "hop", "--dataset", str(old), "--episodes", str(first_success),
                 "--out", str(tmp_path / "hop"), *common]) == 0
    assert load_reward_model(tmp_path / "hop", "cpu").render_settings == RENDER_PRESETS["robosuite"].to_dict()
    capsys.readouterr()
    cases = [(["reward", "combine", "--progress", str(tmp_path / "hop"), "--success", str(tmp_path / "clf"),
               "--out", str(tmp_path / "both")], "were trained on frames drawn differently"),
             (["reward", "train", "classifier", "--dataset", str(camera_demos), str(old), "--out", str(tmp_path / "mixed"),
               *common], "frames drawn with render settings 'fast' and 'robosuite'")]
    for args, says in cases:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
        assert not Path(args[args.index("--out") + 1]).exists()
    # a model scores (reward eval) only frames drawn as its own were
    assert main(["reward", "eval", "--model", str(tmp_path / "clf"), "--dataset", str(old), "--out",
                 str(tmp_path / "ev"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "trained on frames drawn as 'fast', but" in err and err.count("\n") == 1, err
    # a model saved before render settings were recorded was trained on robosuite-drawn frames;
    # a malformed setting names the file and field
    manifest = tmp_path / "clf" / "robo_reward_reward.json"
    saved = json.loads(manifest.read_text())
    saved["config"]["net"].pop("render")
    manifest.write_text(json.dumps(saved))
    assert load_reward_model(tmp_path / "clf", "cpu").render_settings == RENDER_PRESETS["robosuite"].to_dict()
    saved["config"]["net"]["render"] = {"shadows": "yes"}
    manifest.write_text(json.dumps(saved))
    assert main(["reward", "eval", "--model", str(tmp_path / "clf"), "--dataset", str(old), "--out",
                 str(tmp_path / "ev"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "robo_reward_reward.json: success-classifier config field 'render'" in err and err.count("\n") == 1, err
    # rl train's env draws as the model was trained; demonstrations' cameras drawn otherwise are refused
    state_only = {"task": "lift", "robot": "Panda"}
    assert training_env_spec(state_only, ModelRewardSource(clf))["render"] == DEFAULT_RENDER.to_dict()
    with pytest.raises(ConfigError, match="trained on frames drawn as 'fast', but the demonstrations' env has them drawn as 'robosuite'"):
        training_env_spec({**spec, "render": RENDER_PRESETS["robosuite"].to_dict()}, ModelRewardSource(clf))


def test_a_learned_reward_is_the_only_reward_the_learner_sees(camera_demos, tmp_path):
    """A success classifier that never calls success (threshold above any probability) drives a run
    whose scripted base does succeed in the simulator: no simulator success may reach the learner —
    not as reward, not as an episode end, not through the demonstrations — while the simulator's
    judgement is still logged beside what the reward paid for."""
    from robo_reward.rl.checkpoint import load_buffers

    clf = tmp_path / "clf"
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--steps", "5", "--image-size", "32",
                 "--out", str(clf), "--quiet", "--device", "cpu"]) == 0
    manifest = clf / "robo_reward_reward.json"
    saved = json.loads(manifest.read_text())
    saved["config"]["net"]["threshold"] = 1.01
    manifest.write_text(json.dumps(saved))
    run = tmp_path / "run"
    assert main(["rl", "train", "--base", "scripted", "--dataset", str(camera_demos), "--reward", "success-classifier",
                 "--reward-model", str(clf), "--shaping", "none", "--steps", "170", "--eval-every", "100000",
                 "--checkpoint-every", "170", "--out", str(run), "--quiet", "--device", "cpu",
                 "--set", "learning_starts=100000"]) == 0
    episodes = json.loads((run / "metrics.json").read_text())["episodes"]
    assert any(e["success"] for e in episodes), episodes  # the simulator saw the cube lifted
    assert not any(e["reward_success"] for e in episodes) and all(e["return"] == 0.0 for e in episodes)
    assert all(e["length"] == 80 for e in episodes)  # no episode ended at the simulator's success
    buffers = load_buffers(run / "checkpoints" / "latest")
    for name in ("online", "demo"):  # the demos succeeded in the simulator too
        assert buffers[name]["size"] > 0 and not buffers[name]["n_step_return"].any(), name
    # the cameras are the reward's: the policy (state base) is evaluated without drawing them, and
    # plays the very episodes it plays in the demonstrations' camera env
    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.rl.evaluation import evaluate
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env

    policy, manifest = load_policy(run, "cpu")
    assert "cameras" not in manifest["env"]
    assert json.loads((run / "run_config.json").read_text())["env"]["cameras"] == ["agentview", "robot0_eye_in_hand"]
    plain, drawn = (evaluate(make_policy_env(spec), policy, 2, seed=5, progress=False)
                    for spec in (manifest["env"], read_env_spec(camera_demos)))
    assert (plain.successes, plain.lengths, plain.returns) == (drawn.successes, drawn.lengths, drawn.returns)
