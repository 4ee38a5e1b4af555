"""Demo collection -> LeRobotDataset -> reload, base training, evaluation, and bad inputs, via the CLI."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from robo_reward.cli import main
from robo_reward.envs.observations import OBSERVATION_FORMAT
from robo_reward.data.lerobot_io import load_demonstrations, open_dataset


def test_demos_reload_through_lerobot(lift_demos):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/lift", root=lift_demos)
    assert ds.meta.total_episodes == 6
    assert ds.fps == 20
    item = ds[0]
    assert item["task"] == "lift the red cube"
    for key in ("observation.state", "observation.environment_state", "action", "next.reward", "next.success"):
        assert key in item, key
    demos = load_demonstrations(lift_demos)
    assert len(demos) == 6
    assert sum(len(d.actions) for d in demos) == ds.meta.total_frames
    for d in demos:
        # a successful episode ends on its first success: reward 1 exactly there
        if d.success:
            assert d.successes[-1] and d.rewards[-1] == 1.0 and d.rewards[:-1].sum() == 0.0
        assert np.all(np.abs(d.actions) <= 1.0)
        assert len(d.observations) == len(d.actions) + 1


def test_mlp_base_acts_and_evaluates(lift_mlp_base, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["eval", "--policy", str(lift_mlp_base), "--episodes", "2", "--videos", "1",
                 "--out", str(out), "--quiet"]) == 0
    summary = json.loads((out / "eval.json").read_text())
    assert summary["episodes"] == 2 and len(summary["successes"]) == 2
    (video,) = list((out / "videos").glob("*.mp4"))
    import av

    with av.open(str(video)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 5
    assert "success" in capsys.readouterr().out


def test_eval_says_when_its_episodes_start_where_the_policys_demonstrations_did(lift_demos, lift_mlp_base,
                                                                                  tmp_path, capsys):
    """`demos collect` keeps each saved episode's reset seed (not as part of the env a policy acts in);
    the base cloned from them carries them; `eval` on seeds that meet them warns and counts them in
    eval.json (a base scored on its own 20 demonstrations' seeds read ~20 points high), and on seeds
    past them does neither."""
    from robo_reward.data.collect import DEMO_SEED_OFFSET
    from robo_reward.data.lerobot_io import read_env_spec, read_episode_seeds
    from robo_reward.errors import DatasetError
    from robo_reward.rl.evaluation import EVAL_SEED_OFFSET
    from robo_reward.rl.policies import policy_demo_seeds, read_policy_manifest

    seeds = list(range(DEMO_SEED_OFFSET, DEMO_SEED_OFFSET + 6))
    assert read_episode_seeds(lift_demos) == seeds and "episode_seeds" not in read_env_spec(lift_demos)
    assert policy_demo_seeds(read_policy_manifest(lift_mlp_base)) == seeds
    meeting = DEMO_SEED_OFFSET - EVAL_SEED_OFFSET + 4  # reset seeds 2,000,004-2,000,007: the last two demos'
    for first, on_demo_seeds in ((meeting, 2), (meeting + 2, 0)):
        out = tmp_path / f"eval_{first}"
        assert main(["eval", "--policy", str(lift_mlp_base), "--episodes", "4", "--seed", str(first),
                     "--videos", "0", "--out", str(out), "--quiet"]) == 0
        err = capsys.readouterr().err
        assert json.loads((out / "eval.json").read_text())["episodes_on_demo_seeds"] == on_demo_seeds
        assert ("warning: 2 of the 4 evaluation episodes start where" in err) == bool(on_demo_seeds), err
    # a policy whose demonstrations' seeds are unknown (a robot's) is not reported as clear of them
    unknown = tmp_path / "unknown_base"
    shutil.copytree(lift_mlp_base, unknown)
    manifest = json.loads((unknown / "robo_reward_policy.json").read_text())
    del manifest["demo_seeds"]
    (unknown / "robo_reward_policy.json").write_text(json.dumps(manifest))
    assert main(["eval", "--policy", str(unknown), "--episodes", "1", "--seed", str(meeting), "--videos", "0",
                 "--out", str(tmp_path / "eval_unknown"), "--quiet"]) == 0
    assert json.loads((tmp_path / "eval_unknown" / "eval.json").read_text())["episodes_on_demo_seeds"] is None
    # a seed list that no longer matches the episodes (the dataset edited by other tools) is refused
    edited = tmp_path / "edited"
    shutil.copytree(lift_demos, edited)
    spec = json.loads((edited / "robo_reward_env.json").read_text())
    (edited / "robo_reward_env.json").write_text(json.dumps({**spec, "episode_seeds": seeds[:5]}))
    with pytest.raises(DatasetError, match=r"episode_seeds lists 5 seeds for 6 episodes"):
        read_episode_seeds(edited)


def test_demos_through_the_limiter_record_what_the_robot_was_sent(tmp_path):
    """`demos collect --through-limiter` drives the demonstrator through the joint limit guard and
    records the commands it let through: replayed on the raw simulator from the same seeds, those
    actions give the recorded states again. (Recording the demonstrator's own commands instead would
    not: at noise 0.5 the guard slows about half of the Panda's.)"""
    from robo_reward.data.collect import DEMO_SEED_OFFSET
    from robo_reward.rl.runs import make_sim_env

    args = ["demos", "collect", "--task", "lift", "--episodes", "2", "--horizon", "30", "--noise", "0.5", "--quiet"]
    assert main([*args, "--through-limiter", "--out", str(tmp_path / "guarded")]) == 0
    assert main([*args, "--out", str(tmp_path / "raw")]) == 0
    guarded, raw = load_demonstrations(tmp_path / "guarded"), load_demonstrations(tmp_path / "raw")
    assert max(np.abs(g.actions - r.actions).max() for g, r in zip(guarded, raw)) > 0.1
    env = make_sim_env({"task": "lift", "robot": "Panda", "horizon": 30})
    for i, demo in enumerate(guarded):
        obs, _ = env.reset(seed=DEMO_SEED_OFFSET + i)
        for t, action in enumerate(demo.actions):
            np.testing.assert_allclose(obs["observation.state"], demo.observations[t]["observation.state"], atol=1e-5)
            obs, *_ = env.step(action)
    env.close()


def test_a_dataset_or_policy_made_in_another_scene_is_refused(lift_demos, tmp_path, capsys):
    """GR1 Lift's cube moved 0.2 m right of the midline: data and policies made before (recorded with no
    scene) would be scored on a task they never saw, so they are refused; Panda's scene never changed."""
    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.rl.runs import make_sim_env
    from robo_reward.rl.scripted_policy import save_scripted_policy
    from sim import task_scene

    gr1 = tmp_path / "gr1_demos"
    assert main(["demos", "collect", "--task", "lift", "--robot", "GR1", "--episodes", "1", "--out", str(gr1),
                 "--quiet"]) == 0
    spec = read_env_spec(gr1)
    assert spec["scene"] == task_scene("lift", "GR1") and spec["scene"]["cube_offset"] == [0.0, -0.2]
    capsys.readouterr()
    for scene, code in ((spec["scene"], 0), (None, 2)):  # None: a manifest written before scenes were recorded
        policy = tmp_path / f"scripted_{code}"
        policy.mkdir()
        save_scripted_policy(policy, {k: v for k, v in spec.items() if k != "scene" or scene is not None}, 0.0, 0)
        assert main(["eval", "--policy", str(policy), "--episodes", "1", "--seed", "900000",
                     "--out", str(tmp_path / f"eval_{code}"), "--quiet"]) == code
    err = capsys.readouterr().err.strip()
    assert "made in the lift/GR1 scene {}" in err and "record the demonstrations again" in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "eval_2").exists()
    # a Panda dataset recorded before scenes were is still Panda Lift's scene
    old = tmp_path / "panda_before_scenes"
    shutil.copytree(lift_demos, old)
    recorded = json.loads((old / "robo_reward_env.json").read_text())
    (old / "robo_reward_env.json").write_text(json.dumps({k: v for k, v in recorded.items() if k != "scene"}))
    make_sim_env(read_env_spec(old)).close()


def test_unknown_task_and_robot_are_clear_errors(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["demos", "collect", "--task", "stack-blocks", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "stack-blocks" in err and "lift" in err and "Traceback" not in err
    assert main(["demos", "collect", "--robot", "Pandaa", "--out", str(out), "--quiet"]) == 2
    assert "Pandaa" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("args, says", [
    (["demos", "collect", "--episodes", "-3", "--out", "out"], "--episodes: -3 must be a positive whole number"),
    (["demos", "collect", "--episodes", "0", "--out", "out"], "--episodes: 0 must be a positive whole number"),
    (["demos", "collect", "--noise", "-0.5", "--out", "out"], "--noise: -0.5 must be 0 or more"),
    (["demos", "collect", "--image-size", "many", "--out", "out"], "--image-size: 'many' is not a whole number"),
    (["demos", "collect", "--image-size", "16", "--cameras", "agentview", "--out", "out"],
     "--image-size: 16 is too small: recorded frames must be at least 32 pixels"),
    (["demos", "collect", "--render", "pretty", "--out", "out"], "--render: unknown preset 'pretty'"),
    (["demos", "collect", "--render", "fast,shadows=maybe", "--out", "out"], "--render: shadows must be true or false"),
    (["base", "train", "--dataset", "d", "--steps", "0", "--out", "out"], "--steps: 0 must be a positive whole number"),
    (["base", "train", "--dataset", "d", "--members", "0", "--out", "out"], "--members: 0 must be a positive whole"),
    (["rl", "train", "--base", "b", "--dataset", "d", "--steps", "-100", "--out", "out"], "--steps: -100 must be a positive"),
    (["rl", "train", "--base", "b", "--dataset", "d", "--eval-episodes", "0", "--out", "out"], "--eval-episodes: 0 must be"),
    (["rl", "train", "--base", "b", "--dataset", "d", "--checkpoint-every", "0", "--out", "out"], "--checkpoint-every: 0 must"),
    (["eval", "--policy", "p", "--episodes", "0", "--out", "out"], "--episodes: 0 must be a positive whole number"),
    (["eval", "--policy", "p", "--videos", "-1", "--out", "out"], "--videos: -1 must be 0 or more"),
    (["reward", "train", "--dataset", "d", "--heldout", "1.5", "--out", "out"], "--heldout: 1.5 must be between 0 and 1"),
    (["label", "export", "--db", "no/such/labels.db", "--out", "out"], "--db: no/such/labels.db does not exist"),
    (["label", "agreement", "--db", "no/such/labels.db"], "--db: no/such/labels.db does not exist"),
    (["label", "import", "no/such/export.jsonl"], "no/such/export.jsonl does not exist"),
    (["label", "serve", "clips", "--port", "70000"], "--port: 70000 is not a TCP port"),
    (["ros", "up", "sim_panda_lift", "--max-episode-steps", "0"], "--max-episode-steps: 0 must be a positive"),
    (["ros", "up", "sim_panda_lift", "--duration", "-1"], "--duration: -1.0 must be a positive finite number"),
])
def test_impossible_counts_and_missing_inputs_are_one_line_errors(args, says, tmp_path, monkeypatch, capsys):
    """Counts, sizes and rates that cannot be right, and read-only commands given a file that does not
    exist: one line naming the option and the value, exit status 2, nothing created."""
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and err.startswith("robo-reward "), err
    assert list(tmp_path.iterdir()) == []  # no output, no empty database


def test_members_are_refused_for_an_act_base_before_anything_is_read(tmp_path, capsys):
    assert main(["base", "train", "--type", "act", "--members", "3", "--dataset", str(tmp_path / "nope"),
                 "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "--members 3: only an mlp base averages members (this is --type act)" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_and_corrupt_dataset(lift_demos, tmp_path, capsys):
    assert main(["base", "train", "--dataset", str(tmp_path / "nope"), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    assert "nope" in capsys.readouterr().err
    broken = tmp_path / "broken"
    shutil.copytree(lift_demos, broken)
    for parquet in (broken / "data").rglob("*.parquet"):
        parquet.write_bytes(parquet.read_bytes()[:100])
    assert main(["base", "train", "--dataset", str(broken), "--out", str(tmp_path / "b"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "broken" in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()
    with pytest.raises(Exception, match="meta/info.json"):
        open_dataset(tmp_path)


LEGACY = Path(__file__).parent / "data" / "lerobot044"  # written by Python 3.11 + lerobot 0.4.4


def test_a_dataset_and_act_checkpoint_from_the_lerobot_044_stack_load_and_act_the_same(tmp_path, capsys):
    """scripts/make_legacy_fixtures.py wrote them with the old stack: today's lerobot reads the dataset,
    and the ACT checkpoint chooses, step by step through its action chunks, the actions it chose under
    lerobot 0.4.4. They hold observation format 1 (quaternions): training on them or running the policy
    is refused in one line that names the format and what to do."""
    from robo_reward.rl.lerobot_policy import PRETRAINED_SUBDIR, LeRobotPolicy

    demos = load_demonstrations(LEGACY / "demos")
    assert [len(d.actions) for d in demos] == [30, 30]
    policy = LeRobotPolicy(LEGACY / "act" / PRETRAINED_SUBDIR, "cpu")
    policy.reset()
    expected = json.loads((LEGACY / "act_actions.json").read_text())
    assert expected["lerobot"] == "0.4.4"
    np.testing.assert_allclose([policy.act(obs) for obs in demos[0].observations[:-1]], expected["actions"], atol=1e-5)

    assert main(["base", "train", "--dataset", str(LEGACY / "demos"), "--out", str(tmp_path / "bc"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was recorded with observation format 1 (end-effector and object orientations as quaternions)" in err
    assert "record it again" in err and len(err.splitlines()) == 1 and not (tmp_path / "bc").exists()
    assert main(["eval", "--policy", str(LEGACY / "act"), "--episodes", "1", "--out", str(tmp_path / "ev"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was trained on observation format 1" in err and "train it again" in err and len(err.splitlines()) == 1


def test_an_older_dataset_format_and_a_pre_processor_checkpoint_are_refused_saying_what_to_run(tmp_path, capsys):
    old = tmp_path / "old_demos"
    shutil.copytree(LEGACY / "demos", old)
    info = json.loads((old / "meta" / "info.json").read_text())
    (old / "meta" / "info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    spec = json.loads((old / "robo_reward_env.json").read_text())
    (old / "robo_reward_env.json").write_text(json.dumps({**spec, "observation_format": OBSERVATION_FORMAT}))
    assert main(["base", "train", "--dataset", str(old), "--out", str(tmp_path / "bc"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "format v2.1, written by lerobot before 0.4" in err and len(err.strip().splitlines()) == 1
    assert f"convert_dataset_v21_to_v30 --repo-id=local/old_demos --root={old}" in err
    assert not (tmp_path / "bc").exists()
    # a checkpoint saved before lerobot 0.4 keeps its normalization in the model and has no processor files
    act = tmp_path / "old_act"
    shutil.copytree(LEGACY / "act", act)
    manifest = json.loads((act / "robo_reward_policy.json").read_text())
    manifest["env"]["observation_format"] = OBSERVATION_FORMAT
    (act / "robo_reward_policy.json").write_text(json.dumps(manifest))
    for processor in (act / "pretrained_model").glob("policy_*processor*"):
        processor.unlink()
    assert main(["eval", "--policy", str(act), "--episodes", "1", "--out", str(tmp_path / "ev"), "--quiet"]) == 2
    assert "migrate_policy_normalization --pretrained-path" in capsys.readouterr().err


def test_nan_policy_is_refused(lift_mlp_base, tmp_path, capsys):
    bad = tmp_path / "nan_base"
    shutil.copytree(lift_mlp_base, bad)
    weights = load_file(str(bad / "model.safetensors"))
    last_bias = [k for k in weights if k.endswith("bias")][-1]
    weights[last_bias] = weights[last_bias] * float("nan")
    save_file(weights, str(bad / "model.safetensors"))
    out = tmp_path / "eval"
    assert main(["eval", "--policy", str(bad), "--episodes", "1", "--videos", "0", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "non-finite" in err and "Traceback" not in err
    assert not out.exists()


def test_existing_output_needs_overwrite(lift_demos, tmp_path, capsys):
    out = tmp_path / "base"
    out.mkdir()
    assert main(["base", "train", "--dataset", str(lift_demos), "--out", str(out), "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_not_a_policy_directory(tmp_path, capsys):
    assert main(["eval", "--policy", str(tmp_path), "--out", str(tmp_path / "e"), "--quiet"]) == 2
    assert "robo_reward_policy.json" in capsys.readouterr().err


def test_reward_audit_counts_calls_against_the_simulator() -> None:
    """Hand-built traces: a call two steps after the simulator's success, a call on a failed episode, a
    success never called, an agreeing failure."""
    from robo_reward.rewards.shaping import RewardReading
    from robo_reward.rl.evaluation import RewardTrace, reward_audit

    def trace(calls: str, successes: str, final: float) -> RewardTrace:
        readings = [RewardReading(0.1, c == "1") for c in calls[:-1]] + [RewardReading(final, calls[-1] == "1")]
        return RewardTrace(readings, [s == "1" for s in successes], [])

    audit = reward_audit([trace("000011", "001111", 0.9), trace("0011", "0000", 0.7),
                          trace("0000", "0011", 0.5), trace("000", "000", 0.1)])
    assert audit == {"episodes": 4, "called": 2, "called_on_failed": 1, "missed_success": 1, "agreement": 0.5,
                     "call_delay_steps": 2.0, "final_progress_success": pytest.approx(0.7),
                     "final_progress_failure": pytest.approx(0.4)}


def test_a_watching_reward_model_changes_no_outcome_and_is_audited(camera_demos, tmp_path, capsys) -> None:
    """`eval --reward-model`: the model reads every frame through its own cameras but decides nothing —
    the same episodes end the same way as without it — and its success calls are set against the
    simulator's per episode, with the traced episodes drawn beside their frames."""
    from robo_reward.data.lerobot_io import read_env_spec
    from robo_reward.rl.evaluation import WATCH_PAST_SUCCESS
    from robo_reward.rl.scripted_policy import save_scripted_policy

    clf, policy = tmp_path / "clf", tmp_path / "scripted"
    assert main(["reward", "train", "classifier", "--dataset", str(camera_demos), "--steps", "40", "--image-size",
                 "32", "--out", str(clf), "--quiet", "--device", "cpu"]) == 0
    save_scripted_policy(policy, read_env_spec(camera_demos), noise=0.3, seed=0)
    common = ["eval", "--policy", str(policy), "--episodes", "2", "--videos", "0", "--quiet"]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--reward", "success-classifier", "--reward-model", str(clf),
                 "--out", str(tmp_path / "watched")]) == 0
    plain, watched = (json.loads((tmp_path / d / "eval.json").read_text()) for d in ("plain", "watched"))
    for key in ("successes", "mean_length", "mean_return", "seeds"):
        assert watched[key] == plain[key], key
    audit = watched["reward"]
    episodes = audit["per_episode"]
    assert [e["success"] for e in episodes] == watched["successes"] and audit["episodes"] == 2
    # it reads the first frame and every step: past a success for WATCH_PAST_SUCCESS more (a held call)
    for e in episodes:
        watched_steps = min(e["length"] + WATCH_PAST_SUCCESS, 80) if e["success"] else e["length"]
        assert len(e["progress"]) == watched_steps + 1, e
    assert audit["called"] == sum(e["called"] for e in episodes)
    assert audit["called_on_failed"] == sum(e["called"] and not e["success"] for e in episodes)
    assert (tmp_path / "watched" / "reward_trace.png").stat().st_size > 10_000
    assert "reward called success in" in capsys.readouterr().out
    for bad, message in ((["--reward", "success-classifier"], "--reward and --reward-model go together"),
                         (["--reward", "success-classifier", "--reward-model", str(clf), "--out", str(clf),
                           "--overwrite"], "would overwrite the input")):
        assert main([*common, *bad, *(["--out", str(tmp_path / "bad")] if "--out" not in bad else [])]) == 2
        assert message in capsys.readouterr().err
