"""Hop labels, step-wise progress, fusion, and the trainable hop model / success classifier on synthetic video."""

import numpy as np
import pytest
import torch
from devices import DEVICES, needs_cuda
from reward_helpers import moving_square_frames

from robo_reward.data.episodes import LabeledEpisode
from robo_reward.rewards.base import Episode, RewardInputError, RewardModelError
from robo_reward.rewards.classifier import (
    ClassifierTrainConfig,
    SuccessNetConfig,
    load_success_classifier,
    save_success_classifier,
    train_success_classifier,
)
from robo_reward.rewards.metrics import success_metrics, value_order_correlation
from robo_reward.rewards.process import (
    FusionConfig,
    HopNetConfig,
    HopTrainConfig,
    PairSampler,
    fuse_step,
    gripper_keyframes,
    hop_label,
    incremental_update,
    load_hop_model,
    save_hop_model,
    stepwise_progress,
    train_hop_model,
)
from robo_reward.rewards.registry import load_reward_model

torch.set_num_threads(1)


def test_hop_label_is_fraction_of_remaining_or_achieved_progress():
    assert hop_label(0.5, 0.75) == pytest.approx(0.5)  # half of the remaining 0.5 gained
    assert hop_label(0.5, 0.25) == pytest.approx(-0.5)  # half of the achieved 0.5 lost
    assert hop_label(0.0, 1.0) == pytest.approx(1.0) and hop_label(1.0, 0.0) == pytest.approx(-1.0)
    assert hop_label(1.0, 1.0) == 0.0 and hop_label(0.0, 0.0) == 0.0
    # the incremental update inverts the label exactly
    for p, q in [(0.2, 0.9), (0.7, 0.1), (0.4, 0.4)]:
        assert incremental_update(p, hop_label(p, q)) == pytest.approx(q, abs=1e-6)


def test_stepwise_progress_gives_each_stage_an_equal_share():
    phi = stepwise_progress(31, keyframes=[0, 10, 30], levels=20)
    assert phi[0] == 0.0 and phi[10] == pytest.approx(0.5) and phi[30] == pytest.approx(1.0)
    assert np.all(np.diff(phi) >= 0)
    assert set(np.round(phi * 20, 6)) <= set(range(21))  # discretized to 1/20 steps
    actions = np.zeros((12, 7))
    actions[:, -1] = -1
    actions[5:, -1] = 1
    assert gripper_keyframes(actions) == [0, 5, 11]


def test_pair_sampler_balances_hop_sizes():
    sampler = PairSampler([stepwise_progress(60, [0, 59], 20)])
    _, labels = sampler.sample(4000, np.random.default_rng(0))
    # uniform neighbours would make |H| < 0.25 dominate; balanced sampling covers all hop-size bins
    counts = np.histogram(labels, bins=8, range=(-1, 1))[0]
    assert counts.min() > 0.5 * counts.max()


def test_fusion_agrees_with_consistent_hops_and_gate_holds_on_disagreement():
    cfg = FusionConfig()
    # true progress 0.4 -> 0.6: incremental hop 1/3, forward 0.6, backward -(0.4)
    assert fuse_step(0.4, hop_label(0.4, 0.6), 0.6, -0.4, cfg) == pytest.approx(0.6, abs=1e-6)
    gated = FusionConfig(consistency_gate=True, gate_alpha=50.0)
    # forward says 0.9, backward says 0.1: inconsistent -> stay near the previous value
    assert fuse_step(0.3, 0.0, 0.9, -0.9, gated) == pytest.approx(0.3, abs=0.01)


def square_episode(length, seed, task="slide the red square to the right"):
    frames = moving_square_frames(length, seed=seed)
    return Episode({"front": frames, "wrist": frames[:, ::-1].copy()}, task)


@pytest.mark.parametrize("device", DEVICES)
def test_hop_model_adapts_from_one_demo_and_round_trips(tmp_path, device):
    demo = square_episode(24, seed=0)
    cfg = HopNetConfig(cameras=("front", "wrist"), image_size=32, feature_dim=32, hidden=64)
    net, log = train_hop_model([demo], cfg, HopTrainConfig(steps=300, batch_size=32, device=device), progress=False)
    assert log["loss"][-1][1] < log["loss"][0][1]
    out = save_hop_model(tmp_path / "hop", net, {c: demo.frames[c][-1] for c in cfg.cameras})
    model = load_reward_model(out, device=device)
    held_out = square_episode(30, seed=7)  # new noise, new length
    result = model.score_episode(held_out)
    assert value_order_correlation(result.progress) > 0.8
    assert result.progress[-1] > 0.7 > result.progress[len(result.progress) // 4]
    reverse = Episode({c: f[::-1].copy() for c, f in held_out.frames.items()}, held_out.task)
    assert model.score_episode(reverse).progress[-1] < 0.4  # undoing the task is not progress
    stream = model.stream(held_out.task)
    stream.reset({c: f[0] for c, f in held_out.frames.items()})
    online = [stream.step({c: f[t] for c, f in held_out.frames.items()}).progress for t in range(1, 30)]
    # CUDA serves in fp16 autocast, where a single pair and a batch may take different kernels
    np.testing.assert_allclose(online, result.progress[1:], atol=1e-4 if device == "cpu" else 2e-3)
    with pytest.raises(RewardInputError, match="cameras"):
        model.score_episode(Episode({"front": held_out.frames["front"]}, held_out.task))


@needs_cuda
def test_a_hop_model_trained_on_the_cpu_reads_the_same_progress_when_served_on_cuda(tmp_path):
    """The robot serves on its GPU in fp16 what was trained elsewhere: rounding may move a reading, not more."""
    demo = square_episode(24, seed=0)
    cfg = HopNetConfig(cameras=("front", "wrist"), image_size=32, feature_dim=32, hidden=64)
    net, _ = train_hop_model([demo], cfg, HopTrainConfig(steps=100, batch_size=32, device="cpu"), progress=False)
    out = save_hop_model(tmp_path / "hop", net, {c: demo.frames[c][-1] for c in cfg.cameras})
    held_out = square_episode(30, seed=7)
    on_cpu = load_reward_model(out, device="cpu").score_episode(held_out).progress
    on_cuda = load_reward_model(out, device="cuda").score_episode(held_out).progress
    np.testing.assert_allclose(on_cuda, on_cpu, atol=0.03)


def test_hop_model_dir_errors(tmp_path):
    with pytest.raises(RewardModelError, match="not found"):
        load_reward_model(tmp_path / "nope")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "robo_reward_reward.json").write_text("{not json")
    with pytest.raises(RewardModelError, match="invalid manifest"):
        load_reward_model(tmp_path / "bad")
    (tmp_path / "bad" / "robo_reward_reward.json").write_text('{"kind": "hop", "config": {"net": {"cameras": ["front"]}}}')
    with pytest.raises(RewardModelError, match="model.safetensors"):
        load_hop_model(tmp_path / "bad", device="cpu")
    (tmp_path / "bad" / "robo_reward_reward.json").write_text('{"kind": "hop", "config": {"net": {}}}')
    with pytest.raises(RewardModelError, match="invalid hop model config"):
        load_hop_model(tmp_path / "bad", device="cpu")


def test_frame_labels_shift_next_success_onto_the_frame_that_shows_it():
    item = LabeledEpisode(Episode({"cam": np.zeros((4, 8, 8, 3), np.uint8)}, "task"),
                          np.array([False, False, True, True]), "test")
    np.testing.assert_array_equal(item.frame_success, [False, False, False, True])


@pytest.mark.parametrize("device", DEVICES)
def test_success_classifier_learns_where_the_square_is(tmp_path, device):
    def labeled(length, seed, reach):
        frames = moving_square_frames(length, seed=seed)[: int(length * reach)]
        success = np.zeros(len(frames), bool)
        if reach == 1.0:
            success[int(0.8 * length):] = True  # square in the right-most fifth = success
        return LabeledEpisode(Episode({"front": frames}, "slide right"), success, f"seed{seed}")

    train = [labeled(25, s, 1.0) for s in range(3)] + [labeled(25, s, 0.6) for s in range(3, 6)]
    cfg = SuccessNetConfig(cameras=("front",), image_size=32, feature_dim=32, hidden=64)
    net, _ = train_success_classifier(train, cfg, ClassifierTrainConfig(steps=250, device=device), progress=False)
    model = load_success_classifier(save_success_classifier(tmp_path / "clf", net), device=device)
    test = [labeled(25, s, r) for s, r in [(10, 1.0), (11, 0.6), (12, 1.0), (13, 0.5)]]
    predicted = [model.score_episode(e.episode).final_success for e in test]
    assert success_metrics(predicted, [e.succeeded for e in test])["accuracy"] == 1.0
    with pytest.raises(RewardInputError, match="both success and failure"):
        train_success_classifier([labeled(25, 0, 0.6)], cfg, ClassifierTrainConfig(steps=1, device="cpu"),
                                 progress=False)


def test_rapl_ot_reward_matches_pot_and_preferences_train_the_encoder(tmp_path):
    import ot

    from robo_reward.rewards.rapl import RaplConfig, RaplTrainConfig, cosine_cost, train_rapl

    expert = Episode({"front": moving_square_frames(20, seed=0)}, "slide right")

    def partial(seed, reach):
        frames = moving_square_frames(20, seed=seed)
        stop = int(19 * reach)
        frames[stop:] = frames[stop]  # the square stops part-way and stays there
        return Episode({"front": frames}, "slide right")

    prefs = [(partial(s, 1.0), partial(s + 50, 0.3)) for s in range(1, 4)] + \
            [(partial(s, 0.7), partial(s + 50, 0.2)) for s in range(4, 6)]
    cfg = RaplConfig(cameras=("front",), image_size=32, feature_dim=16)
    model, log = train_rapl([expert], prefs, cfg, RaplTrainConfig(epochs=12, lr=1e-3, device="cpu"), progress=False)
    assert log["loss"][-1] < log["loss"][0]
    held_out = [(partial(100 + s, 1.0), partial(200 + s, 0.4)) for s in range(4)]
    wins = [model.score_episode(a).score > model.score_episode(b).score for a, b in held_out]
    assert np.mean(wins) >= 0.75
    # r_t = -sum_j P_tj C_tj with P from POT's Sinkhorn on the same cost
    from robo_reward.rewards.rapl import load_rapl, save_rapl

    reloaded = load_rapl(save_rapl(tmp_path / "rapl", model, log), device="cpu")
    episode = held_out[0][0]
    result = reloaded.score_episode(episode)
    with torch.inference_mode():
        robot = reloaded.embed(episode.select(("front",)))
        cost = cosine_cost(robot, reloaded.expert_embeddings()[0]).double().numpy()
    coupling = ot.sinkhorn(np.full(20, 1 / 20), np.full(20, 1 / 20), cost, cfg.sinkhorn_reg, method="sinkhorn_log",
                           numItermax=cfg.sinkhorn_iters)
    np.testing.assert_allclose(result.reward, -(coupling * cost).sum(1), atol=1e-4)
    assert result.score == pytest.approx(float(result.reward.sum()), rel=1e-5)
    assert np.all((result.progress >= 0) & (result.progress <= 1))


def test_reward_model_loads_from_the_hub_cache(tmp_path, monkeypatch):
    import shutil

    demo = square_episode(8, seed=0)
    cfg = HopNetConfig(cameras=("front", "wrist"), image_size=32, feature_dim=16, hidden=32)
    net, _ = train_hop_model([demo], cfg, HopTrainConfig(steps=2, batch_size=4, device="cpu"), progress=False)
    local = save_hop_model(tmp_path / "hop", net, {c: demo.frames[c][-1] for c in cfg.cameras})
    # the layout huggingface_hub writes: models--ORG--NAME/{refs/main, snapshots/<commit>/...}
    cache = tmp_path / "hub"
    commit = "0" * 40
    repo = cache / "models--lab--lift-hop"
    shutil.copytree(local, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    model = load_reward_model("hf:lab/lift-hop", device="cpu")
    assert model.score_episode(demo).progress.shape == (8,)
    with pytest.raises(RewardModelError, match="not in the hub cache"):
        load_reward_model("hf:lab/missing", device="cpu")
