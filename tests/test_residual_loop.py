"""A short residual RL run on real robosuite Lift through the CLI, and exact checkpoint/resume."""

import json
import shutil

import numpy as np
import pytest
import torch

from policy_helpers import save_tiny_lerobot_base
from robo_reward.cli import main
from robo_reward.rl.checkpoint import LEARNER_FILE, load_buffers
from robo_reward.rl.residual_policy import LATEST_CHECKPOINT

FAST = ["--in-process", "--set", "learning_starts=60", "--set", "critic_warmup_updates=20", "--set", "utd_ratio=1",
        "--set", "batch_size=32", "--set", "actor_lr=1e-3", "--eval-episodes", "1", "--quiet"]


def rl_train(base, demos, out, steps, *extra):
    return main(["rl", "train", "--base", str(base), "--dataset", str(demos), "--steps", str(steps),
                 "--eval-every", "100", "--checkpoint-every", "100", "--out", str(out), *FAST, *extra])


def learner_state(run_dir):
    return torch.load(run_dir / LATEST_CHECKPOINT / LEARNER_FILE, weights_only=True)


def test_short_residual_run_on_lift(lift_demos, lift_mlp_base, tmp_path, capsys):
    run = tmp_path / "rl"
    assert rl_train(lift_mlp_base, lift_demos, run, 240) == 0
    out = capsys.readouterr().out
    assert "residual RL: eval success" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["evals"][0]["env_step"] == 0 and metrics["evals"][-1]["env_step"] >= 240
    assert sum(e["length"] for e in metrics["episodes"]) == metrics["evals"][-1]["env_step"]
    assert (run / "success_vs_steps.png").stat().st_size > 10_000
    state = learner_state(run)
    # the zero-initialised last actor layer has moved: actor updates happened
    actor = state["learner"]["actor"]
    last_weight = [v for k, v in actor.items() if k.endswith("weight")][-1]
    assert last_weight.abs().sum() > 0
    # the run directory is itself a policy that evaluates
    assert main(["eval", "--policy", str(run), "--episodes", "1", "--videos", "0",
                 "--out", str(tmp_path / "eval"), "--quiet"]) == 0


def test_resume_is_exact(lift_demos, lift_mlp_base, tmp_path):
    """With pink exploration, whose episode draws its noise sequence up front (white noise draws per step)."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    pink = ("--set", "exploration_noise_beta=1")
    assert rl_train(lift_mlp_base, lift_demos, straight, 260, *pink) == 0
    assert rl_train(lift_mlp_base, lift_demos, split, 130, *pink) == 0
    assert main(["rl", "train", "--out", str(split), "--steps", "260", "--resume", "--in-process", "--quiet"]) == 0
    a, b = learner_state(straight)["learner"], learner_state(split)["learner"]
    for part in ("actor", "critic", "actor_target", "critic_target"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    buffers_a, buffers_b = load_buffers(straight / LATEST_CHECKPOINT), load_buffers(split / LATEST_CHECKPOINT)
    for key in buffers_a["online"]:
        np.testing.assert_array_equal(buffers_a["online"][key], buffers_b["online"][key])
    evals_a = json.loads((straight / "metrics.json").read_text())["evals"]
    evals_b = json.loads((split / "metrics.json").read_text())["evals"]
    assert [e["env_step"] for e in evals_a] == [e["env_step"] for e in evals_b]


def test_resume_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["rl", "train", "--out", str(tmp_path / "none"), "--resume", "--quiet"]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_base_for_another_task_is_rejected(lift_demos, lift_mlp_base, tmp_path, capsys):
    manifest = json.loads((lift_mlp_base / "robo_reward_policy.json").read_text())
    other = tmp_path / "can_base"
    shutil.copytree(lift_mlp_base, other)
    manifest["env"]["task"] = "can"
    (other / "robo_reward_policy.json").write_text(json.dumps(manifest))
    assert main(["rl", "train", "--base", str(other), "--dataset", str(lift_demos), "--out", str(tmp_path / "r"),
                 "--quiet"]) == 2
    assert "task='can'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_a_residual_policy_carries_every_demonstration_seed_it_learned_from(lift_demos, lift_mlp_base, tmp_path):
    """A residual policy's manifest names the initial states of its own demonstrations and of its base's
    (here a base said to be cloned from other episodes), so that `eval` can warn when it is scored on
    them; with and without `--in-process` (both build the run through `create_residual_run`)."""
    from robo_reward.data.lerobot_io import read_episode_seeds
    from robo_reward.rl.policies import POLICY_FILE, policy_demo_seeds, read_policy_manifest

    base = tmp_path / "base"
    shutil.copytree(lift_mlp_base, base)
    manifest = json.loads((base / POLICY_FILE).read_text())
    assert manifest["demo_seeds"] == read_episode_seeds(lift_demos)
    manifest["demo_seeds"] = [7, read_episode_seeds(lift_demos)[0]]
    (base / POLICY_FILE).write_text(json.dumps(manifest))
    expected = sorted({7, *read_episode_seeds(lift_demos)})
    for layout in ([], ["--in-process"]):
        run = tmp_path / f"rl{len(layout)}"
        assert main(["rl", "train", "--base", str(base), "--dataset", str(lift_demos), "--steps", "20",
                     "--eval-episodes", "1", "--eval-every", "1000", "--checkpoint-every", "1000",
                     "--out", str(run), "--quiet", *layout]) == 0
        assert policy_demo_seeds(read_policy_manifest(run)) == expected, layout


def test_lerobot_act_and_scripted_bases_drive_the_residual_learner(lift_demos, tmp_path):
    """Any base works: a LeRobot ACT checkpoint trained by lerobot-train, and the scripted controller."""
    act_dir = tmp_path / "act"
    assert main(["base", "train", "--dataset", str(lift_demos), "--type", "act", "--steps", "10",
                 "--out", str(act_dir), "--quiet"]) == 0
    assert (act_dir / "pretrained_model" / "model.safetensors").is_file()
    for name, base in (("act", act_dir), ("scripted", "scripted")):
        run = tmp_path / f"rl_{name}"
        assert rl_train(base, lift_demos, run, 80) == 0, name
        manifest = json.loads((run / "base" / "robo_reward_policy.json").read_text())
        assert manifest["kind"] == ("lerobot" if name == "act" else "scripted")
        assert len(json.loads((run / "metrics.json").read_text())["episodes"]) >= 1


def test_act_on_camera_demos_trains_without_internet_and_acts_from_images(camera_demos, tmp_path, capfd):
    """ACT's camera encoder starts from ImageNet weights that lerobot-train would download; with none
    in torch's cache (this machine has no internet) it trains from scratch and says so."""
    from robo_reward.rl.lerobot_policy import cached_backbone_weights

    act_dir = tmp_path / "act"
    assert main(["base", "train", "--dataset", str(camera_demos), "--type", "act", "--steps", "3",
                 "--out", str(act_dir), "--quiet"]) == 0
    if cached_backbone_weights("ResNet18_Weights.IMAGENET1K_V1") is None:
        assert "camera encoder trains from scratch" in capfd.readouterr().err
    assert main(["eval", "--policy", str(act_dir), "--episodes", "1", "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    assert "success" in capfd.readouterr().out


def test_bad_learner_settings_and_loop_settings_are_clear_errors(lift_demos, lift_mlp_base, tmp_path, capsys):
    for bad in (["--set", "actor_lr=abc"], ["--set", "policy_delay=0"], ["--eval-every", "0"],
                ["--set", "residual_scale=[0.1, 1.0]"]):
        run = tmp_path / "r"
        assert main(["rl", "train", "--base", str(lift_mlp_base), "--dataset", str(lift_demos), "--steps", "10",
                     "--out", str(run), "--quiet", *bad]) == 2, bad
        err = capsys.readouterr().err
        assert "Traceback" not in err and any(word in err for word in (
            "actor_lr", "policy_delay", "--eval-every: 0", "residual_scale has 2 values; the action has 7"))
        assert not run.exists()


def test_overwrite_never_deletes_an_input(lift_demos, capsys):
    assert main(["base", "train", "--dataset", str(lift_demos), "--out", str(lift_demos), "--overwrite",
                 "--quiet"]) == 2
    assert "would overwrite the input" in capsys.readouterr().err
    assert (lift_demos / "meta" / "info.json").is_file()


@pytest.mark.parametrize("kind", ["act", "diffusion"])
def test_any_lerobot_policy_built_by_lerobots_factory_is_a_base(kind, lift_demos, tmp_path, capsys):
    """Tiny ACT and Diffusion Policy checkpoints (lerobot's configs, saved the way lerobot saves them):
    one that reads the env's state and acts in its action space drives `rl train` (its action chunks
    taken one step at a time); one built for another robot is refused before anything runs, with every
    mismatch named."""
    from robo_reward.data.lerobot_io import read_env_spec

    spec = read_env_spec(lift_demos)
    wrong = save_tiny_lerobot_base(kind, tmp_path / "wrong", spec, state_dim=15, act_dim=6)
    assert rl_train(wrong, lift_demos, tmp_path / "rl_wrong", 60) == 2
    err = capsys.readouterr().err
    assert f"the LeRobot {kind} base does not fit" in err and "observation.state as (15,)" in err and "(18,)" in err
    assert "its action has 6 elements" in err and not (tmp_path / "rl_wrong").exists()
    base = save_tiny_lerobot_base(kind, tmp_path / kind, spec)
    assert rl_train(base, lift_demos, tmp_path / "rl", 60) == 0
    metrics = json.loads((tmp_path / "rl" / "metrics.json").read_text())
    assert sum(e["length"] for e in metrics["episodes"]) >= 60


def test_lerobots_own_sac_learns_in_the_same_loop_and_resumes_exactly(lift_demos, lift_mlp_base, tmp_path, capsys):
    """`rl train --learner lerobot-sac`: lerobot's GaussianActorPolicy and SACAlgorithm updated by this
    loop on half-demonstration batches; N steps in one go and N/2 + resume + N/2 give the same networks,
    critics, temperature and replay — the split run also evaluates where the straight one does not, and
    evaluation must not disturb the learner's random stream; the run is a policy `eval` runs."""
    sac = ["--learner", "lerobot-sac", "--in-process", "--set", "learning_starts=60", "--set", "batch_size=32",
           "--eval-episodes", "1", "--eval-every", "1000", "--checkpoint-every", "100", "--quiet"]

    def train(out, steps):
        return main(["rl", "train", "--base", str(lift_mlp_base), "--dataset", str(lift_demos), "--steps", str(steps),
                     "--out", str(out), *sac])

    assert main(["rl", "train", "--learner", "lerobot-sac", "--base", str(lift_mlp_base), "--dataset",
                 str(lift_demos), "--out", str(tmp_path / "two"), "--quiet"]) == 2
    assert "add --in-process" in capsys.readouterr().err and not (tmp_path / "two").exists()
    straight, split = tmp_path / "straight", tmp_path / "split"
    assert train(straight, 260) == 0 and train(split, 130) == 0
    assert main(["rl", "train", "--out", str(split), "--steps", "260", "--resume", "--in-process", "--quiet"]) == 0
    a, b = learner_state(straight)["learner"], learner_state(split)["learner"]
    assert a["kind"] == "lerobot-sac" and a["optimization_step"] > 100
    for part in ("policy", "critic_ensemble", "critic_target"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), f"{part}.{key} differs after resume"
    assert torch.equal(a["log_alpha"], b["log_alpha"])
    online_a, online_b = load_buffers(straight / LATEST_CHECKPOINT)["online"], load_buffers(split / LATEST_CHECKPOINT)["online"]
    for key in online_a:
        np.testing.assert_array_equal(online_a[key], online_b[key])
    assert main(["eval", "--policy", str(straight), "--episodes", "1", "--videos", "0", "--out", str(tmp_path / "ev"),
                 "--quiet"]) == 0


@pytest.mark.parametrize("learn_commanded, loop", [(True, "--in-process"), (True, "two processes"),
                                                   (False, "two processes")])
def test_the_learner_stores_the_command_or_what_the_guard_let_through(lift_demos, lift_mlp_base, tmp_path,
                                                                      learn_commanded, loop):
    """Every step goes through the joint limit guard. With learn_commanded_action every stored action is
    the actor's command, within the residual bound of the base's action, in either loop; without it
    some are the guard's rewrites, further from the base's action than any command can be."""
    run = tmp_path / "rl"
    flags = [f for f in FAST if f != "--in-process"] + ([loop] if loop == "--in-process" else [])
    assert main(["rl", "train", "--base", str(lift_mlp_base), "--dataset", str(lift_demos), "--steps", "300",
                 "--eval-every", "1000", "--out", str(run), *flags,
                 "--set", f"learn_commanded_action={json.dumps(learn_commanded)}"]) == 0
    online = load_buffers(run / LATEST_CHECKPOINT)["online"]
    size = int(online["size"])
    gap = np.abs(online["action"][:size] - np.clip(online["base_action"][:size], -1.0, 1.0)).max(axis=1)
    bound = 0.1  # ResFiT's residual_scale, the default
    assert size >= 300 and (gap.max() <= bound + 1e-5 if learn_commanded else gap.max() > 2 * bound), gap.max()
