"""Reward interface, shaping, metrics, video input and the CLIP reward on a tiny real open_clip model."""

import numpy as np
import pytest
import torch
from devices import needs_cuda
from reward_helpers import moving_square_frames, save_tiny_open_clip

from robo_reward.data.episodes import read_video
from robo_reward.errors import DatasetError
from robo_reward.rewards.base import Episode, RewardInputError, subsample_indices
from robo_reward.rewards.clip import ClipReward, ClipRewardConfig
from robo_reward.rewards.metrics import preference_accuracy, score_mae, success_metrics, value_order_correlation
from robo_reward.rewards.shaping import RewardReading, RewardRule, ShapingConfig, shaped_rewards


def test_policy_invariant_shaping_telescopes_and_pays_gold_at_goal():
    phi = np.array([0.0, 0.2, 0.5, 0.5, 0.97])
    cfg = ShapingConfig(gamma=0.99, delta=0.05)
    r = shaped_rewards(phi, cfg)
    expected = np.array([0.99 * 0.2, 0.99 * 0.5 - 0.2, 0.99 * 0.5 - 0.5, 1 + 0.99 * 0.97 - 0.5])
    np.testing.assert_allclose(r, expected, rtol=1e-6)
    # potential-based: the discounted return differs from the gold return only by -Phi(s0) + gamma^T Phi(s_T)
    discounts = cfg.gamma ** np.arange(len(r))
    gold = (phi[1:] >= 0.95).astype(float)
    assert np.isclose((discounts * r).sum(), (discounts * gold).sum() - phi[0] + cfg.gamma ** len(r) * phi[-1])


def test_parking_at_high_progress_is_not_rewarded_by_shaping():
    # Parking at a high-but-not-done state: shaped reward per step is (gamma - 1) * Phi < 0, so it is not farmed.
    phi = np.full(10, 0.8)
    assert np.all(shaped_rewards(phi) < 0)
    assert np.all(shaped_rewards(phi, ShapingConfig(mode="raw-progress-difference")) == 0)


def test_the_learners_step_rule_matches_batch_form():
    phi = np.random.default_rng(0).uniform(0, 1, 20)
    rule = RewardRule(ShapingConfig())
    online = [rule(RewardReading(a), RewardReading(b)) for a, b in zip(phi, phi[1:])]
    np.testing.assert_allclose(online, shaped_rewards(phi), rtol=1e-6)
    assert RewardRule.from_dict(rule.to_dict()) == rule
    # no shaping: the source's own reward at s' (sparse success, a classifier's call)
    assert RewardRule(None)(RewardReading(0.2), RewardReading(0.9, True, 1.0)) == 1.0


def test_success_detector_replaces_the_progress_threshold_as_gold():
    # progress that never reaches 1 - delta, and a detector that calls success at the last two states
    phi = np.array([0.1, 0.4, 0.7, 0.8, 0.8])
    success = np.array([False, False, False, True, True])
    r = shaped_rewards(phi, ShapingConfig(), success)
    np.testing.assert_allclose(r, success[1:] + 0.99 * phi[1:] - phi[:-1], rtol=1e-6)
    assert not np.allclose(r, shaped_rewards(phi))  # the threshold alone would pay no gold here
    rule = RewardRule(ShapingConfig(), gold_from_success=True)
    readings = [RewardReading(p, s) for p, s in zip(phi, success)]
    np.testing.assert_allclose([rule(a, b) for a, b in zip(readings, readings[1:])], r, rtol=1e-6)
    with pytest.raises(ValueError, match="success flags shape"):
        shaped_rewards(phi, ShapingConfig(), success[1:])


@pytest.mark.parametrize("bad", [{"mode": "diff"}, {"gamma": 0.0}, {"delta": 1.0}])
def test_shaping_config_rejects_bad_values(bad):
    with pytest.raises(Exception, match="shaping"):
        ShapingConfig(**bad)


def test_metrics():
    assert value_order_correlation(np.arange(10.0)) == pytest.approx(1.0)
    assert value_order_correlation(-np.arange(10.0)) == pytest.approx(-1.0)
    assert value_order_correlation(np.ones(5)) == 0.0
    assert score_mae([1, 2, 5], [1, 3, 3]) == pytest.approx(1.0)
    assert score_mae([1, 2, 5, 5], [1, 3, 5, 5], subsets=["a", "a", "b", "b"]) == pytest.approx(0.25)
    m = success_metrics([True, True, False, False], [True, False, False, True])
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5
    assert preference_accuracy([2, 1, 3], [1, 1, 4]) == pytest.approx(0.5)


def test_subsample_always_keeps_the_last_frame():
    for length in (1, 5, 16, 17, 100, 257):
        idx = subsample_indices(length, 16)
        assert idx[-1] == length - 1 and idx[0] == 0 and len(idx) == min(length, 16)
        assert np.all(np.diff(idx) > 0)


@pytest.mark.parametrize(
    "frames, task, match",
    [
        ({"front": np.zeros((0, 8, 8, 3), np.uint8)}, "lift", "zero frames"),
        ({"front": np.zeros((3, 8, 8, 3), np.float32)}, "lift", "uint8"),
        ({"front": np.zeros((3, 8, 8), np.uint8)}, "lift", r"\(T, H, W, 3\)"),
        ({"front": np.zeros((3, 8, 8, 3), np.uint8), "wrist": np.zeros((2, 8, 8, 3), np.uint8)}, "lift",
         "different frame counts"),
        ({"front": np.zeros((3, 8, 8, 3), np.uint8)}, "  ", "task text is empty"),
        ({}, "lift", "no cameras"),
    ],
)
def test_episode_rejects_bad_input(frames, task, match):
    with pytest.raises(RewardInputError, match=match):
        Episode(frames, task)


def write_mp4(path, frames, fps=10):
    import av  # PyAV only in the video tests: the GPU machines that run this module's CUDA test lack it

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))


def test_read_video_roundtrip_and_bad_files(tmp_path):
    import av

    frames = moving_square_frames(12, size=32)
    write_mp4(tmp_path / "ok.mp4", frames)
    decoded = read_video(tmp_path / "ok.mp4")
    assert decoded.shape == (12, 32, 32, 3) and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(int) - frames).mean() < 12  # lossy codec, same picture
    (tmp_path / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(DatasetError, match="corrupt.mp4"):
        read_video(tmp_path / "corrupt.mp4")
    with pytest.raises(DatasetError, match="not found"):
        read_video(tmp_path / "missing.mp4")
    with av.open(str(tmp_path / "empty.mp4"), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
    with pytest.raises(DatasetError, match="empty.mp4"):
        read_video(tmp_path / "empty.mp4")


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    directory = save_tiny_open_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")
    return ClipReward(ClipRewardConfig(model=str(directory), camera="front", device="cpu", batch_size=4))


def test_clip_reward_matches_the_vlm_rm_formula(tiny_clip):
    frames = moving_square_frames(6)
    x = tiny_clip.embed_images(frames)
    g, b = tiny_clip.embed_text(["push the red square to the right", tiny_clip.config.baseline_prompt])
    d = (g - b)[:, None]
    alpha = tiny_clip.config.alpha
    P = alpha * (d @ d.T) / (d.T @ d) + (1 - alpha) * torch.eye(len(g))
    expected = 1 - 0.5 * (((x - g) @ P) ** 2).sum(-1)
    result = tiny_clip.score_episode(Episode({"front": frames}, "push the red square to the right"))
    np.testing.assert_allclose(result.reward, expected.numpy(), rtol=1e-4, atol=1e-5)
    assert result.ok and result.progress.shape == (6,) and np.all((0 <= result.progress) & (result.progress <= 1))


def test_clip_batched_equals_one_frame_at_a_time_and_stream(tiny_clip):
    frames = moving_square_frames(9)
    episode = Episode({"front": frames}, "push the red square")
    batched = tiny_clip.score_episode(episode)  # batch_size 4: batches of 4, 4, 1
    stream = tiny_clip.stream("push the red square")
    online = [stream.reset({"front": frames[0]})] + [stream.step({"front": f}) for f in frames[1:]]
    np.testing.assert_allclose([s.reward for s in online], batched.reward, rtol=1e-4, atol=1e-5)
    with pytest.raises(RewardInputError, match="front"):
        stream.step({"wrist": frames[0]})
    with pytest.raises(RewardInputError, match="cameras"):
        tiny_clip.score_episode(Episode({"wrist": frames}, "push"))


def test_clip_calibration_and_load_errors(tiny_clip, tmp_path):
    frames, task = moving_square_frames(8), "push the red square"
    raw = tiny_clip.score_episode(Episode({"front": frames}, task)).reward
    lo, hi = int(np.argmin(raw)), int(np.argmax(raw))
    with pytest.raises(Exception, match="does not separate"):
        tiny_clip.calibrate(frames[hi:hi + 1], frames[lo:lo + 1], task)
    tiny_clip.calibrate(frames[lo:lo + 1], frames[hi:hi + 1], task)
    progress = tiny_clip.score_episode(Episode({"front": frames}, task)).progress
    assert progress[lo] == pytest.approx(0.0, abs=1e-4) and progress[hi] == pytest.approx(1.0, abs=1e-4)
    from robo_reward.rewards.base import RewardModelError

    with pytest.raises(RewardModelError, match="local directory"):
        ClipReward(ClipRewardConfig(model="ViT-B-32", pretrained="laion2b_s34b_b79k", device="cpu"))
    (tmp_path / "broken").mkdir()
    with pytest.raises(RewardModelError, match="broken"):
        ClipReward(ClipRewardConfig(model=str(tmp_path / "broken"), device="cpu"))


@needs_cuda
def test_clip_reward_served_on_cuda_in_half_precision_matches_the_cpu(tiny_clip):
    """CUDA (the serving target) runs CLIP in fp16 autocast: rewards move by rounding only."""
    frames, task = moving_square_frames(9), "push the red square to the right"
    on_cuda = ClipReward(ClipRewardConfig(model=tiny_clip.config.model, camera="front", device="cuda", batch_size=4))
    np.testing.assert_allclose(on_cuda.score_episode(Episode({"front": frames}, task)).reward,
                               tiny_clip.score_episode(Episode({"front": frames}, task)).reward, atol=1e-2)


def test_episodes_rank_by_success_call_then_progress():
    from robo_reward.rewards.base import RewardResult
    from robo_reward.rewards.evaluation import episode_score

    def result(progress, success, score=None):
        return RewardResult(progress=np.array([0.0, progress], np.float32), success=np.array([False, success]),
                            score=score)

    # a detector that accepts a low-progress episode ranks it above an unaccepted high-progress one
    assert episode_score(result(0.3, True)) > episode_score(result(0.9, False))
    # a model whose success is its own progress threshold keeps the progress order
    assert episode_score(result(0.97, True)) > episode_score(result(0.94, False)) > episode_score(result(0.5, False))
    assert episode_score(result(0.2, True, score=2.0)) < episode_score(result(0.1, False, score=4.0))
