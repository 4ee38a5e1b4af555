"""Generative VLM rewards: parsing, the OpenAI-compatible endpoint backend against a real local HTTP
server, GRM-style hops through the process-reward fusion, and the transformers backend on a tiny
vision-language model built from a config."""

import time

import numpy as np
import pytest
from reward_helpers import FakeEndpoint, moving_square_frames

from robo_reward.rewards.base import Episode, NoRewardError
from robo_reward.rewards.process import ProcessReward
from robo_reward.rewards.vlm import (
    OpenAIChatConfig,
    OpenAIChatVLM,
    VLMHopPredictor,
    VLMProgressConfig,
    VLMProgressReward,
    parse_hop,
    parse_progress_score,
)


@pytest.mark.parametrize("reply, score", [("reason...\nANSWER: 4", 4), ("ANSWER: 2\nANSWER: 5", 5),
                                          ("**ANSWER:** 3", 3), ("ANSWER: **3**", 3), ("ANSWER:1", 1)])
def test_parse_progress_score(reply, score):
    if score is None:
        with pytest.raises(NoRewardError):
            parse_progress_score(reply)
    else:
        assert parse_progress_score(reply) == score


@pytest.mark.parametrize("reply", ["", "ANSWER: 6", "ANSWER: 0", "ANSWER: 4.5", "the answer is four", None])
def test_reply_without_a_valid_score_is_no_reward(reply):
    with pytest.raises(NoRewardError, match="no 'ANSWER"):
        parse_progress_score(reply)


def test_parse_hop():
    assert parse_hop("<score>+35%</score>") == pytest.approx(0.35)
    assert parse_hop("<score>-100%</score>") == pytest.approx(-1.0)
    with pytest.raises(NoRewardError, match="outside"):
        parse_hop("<score>+150%</score>")
    with pytest.raises(NoRewardError):
        parse_hop("+35%")


@pytest.fixture()
def endpoint():
    server = FakeEndpoint()
    yield server
    server.stop()


def episode(length=40):
    return Episode({"agentview": moving_square_frames(length)}, "lift the red cube")


def test_endpoint_roboreward_score_and_request_format(endpoint):
    backend = OpenAIChatVLM(OpenAIChatConfig(base_url=endpoint.url, model="robo-8b", api_key="s3cret"))
    result = VLMProgressReward(backend).score_episode(episode(40))
    assert result.ok and result.score == 4 and result.progress[-1] == pytest.approx(0.75)
    body = endpoint.requests[0]["body"]
    assert body["model"] == "robo-8b" and body["max_tokens"] >= 24
    content = body["messages"][0]["content"]
    images = [c for c in content if c["type"] == "image_url"]
    assert len(images) == 16 and images[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "lift the red cube" in content[-1]["text"] and "ANSWER: <score>" in content[-1]["text"]
    assert endpoint.requests[0]["auth"] == "Bearer s3cret"


def test_endpoint_failures_are_explicit_no_reward(endpoint):
    fast = OpenAIChatConfig(base_url=endpoint.url, timeout_s=0.5, retries=1, backoff_s=0.01)
    model = VLMProgressReward(OpenAIChatVLM(fast))
    endpoint.reply = "Looks good to me."
    result = model.score_episode(episode())
    assert not result.ok and "no 'ANSWER" in result.error and "Looks good" in result.error
    endpoint.mode = "slow"
    start = time.time()
    result = model.score_episode(episode())
    assert not result.ok and "timed out" in result.error and time.time() - start < 3
    endpoint.mode, endpoint.reply, endpoint.fail_first = "answer", "ANSWER: 5", 1
    assert model.score_episode(episode()).score == 5  # one 503, then the retry succeeds
    endpoint.mode = "bad-json"
    assert "not a chat completion" in model.score_episode(episode()).error
    endpoint.stop()
    down = model.score_episode(episode())
    assert not down.ok and "cannot reach" in down.error


def test_endpoint_concurrency_limit(endpoint):
    endpoint.mode = "slow"
    backend = OpenAIChatVLM(OpenAIChatConfig(base_url=endpoint.url, max_concurrency=2, timeout_s=10))
    model = VLMProgressReward(backend, VLMProgressConfig(max_workers=6))
    results = model.score_episodes([episode(20) for _ in range(6)])
    assert all(r.ok for r in results) and endpoint.max_in_flight == 2


def test_grm_hops_through_the_endpoint_drive_fusion(endpoint):
    frames = moving_square_frames(6)
    true_phi = np.linspace(0, 1, 6)

    def hop_reply(body):  # an oracle GRM: hop from the true progress of the BEFORE/AFTER frames
        urls = [c["image_url"]["url"] for c in body["messages"][0]["content"] if c["type"] == "image_url"]
        before, after = (encoded.index(u) for u in urls[2:4])
        p, q = true_phi[before], true_phi[after]
        hop = 0.0 if p == q else (q - p) / (1 - p) if q > p else (q - p) / p
        return f"<score>{hop * 100:+.1f}%</score>"

    from robo_reward.rewards.vlm import png_data_url

    encoded = [png_data_url(f) for f in frames]
    endpoint.reply = hop_reply
    backend = OpenAIChatVLM(OpenAIChatConfig(base_url=endpoint.url))
    predictor = VLMHopPredictor(backend, ["agentview"], {"agentview": frames[0]}, {"agentview": frames[-1]})
    model = ProcessReward(predictor, {"agentview": frames[-1]})
    result = model.score_episode(Episode({"agentview": frames}, "slide right"))
    assert result.ok, result.error
    np.testing.assert_allclose(result.progress, true_phi, atol=2e-3)
    endpoint.reply = "no idea"
    assert not model.score_episode(Episode({"agentview": frames}, "slide right")).ok


def test_transformers_backend_scores_with_a_local_checkpoint(tmp_path):
    from reward_helpers import save_tiny_qwen2_vl

    from robo_reward.rewards.base import RewardModelError, subsample_indices
    from robo_reward.rewards.vlm import ROBOREWARD_RUBRIC, TransformersVLM

    ep = Episode({"agentview": moving_square_frames(40)}, "lift the red cube")
    frames = [ep.frames["agentview"][i] for i in subsample_indices(40, 4)]
    prompt = ROBOREWARD_RUBRIC.format(task=ep.task)
    path = save_tiny_qwen2_vl(tmp_path / "tiny-vl", teach=[(frames, prompt, "ANSWER: 4")], steps=40)
    backend = TransformersVLM(path, device="cpu", max_new_tokens=8)
    result = VLMProgressReward(backend, VLMProgressConfig(frames=4)).score_episode(ep)
    assert result.ok, result.error
    assert result.score == 4 and result.progress[-1] == pytest.approx(0.75)
    untrained = TransformersVLM(save_tiny_qwen2_vl(tmp_path / "random-vl"), device="cpu", max_new_tokens=8)
    random_result = VLMProgressReward(untrained, VLMProgressConfig(frames=4)).score_episode(ep)
    assert not random_result.ok and "no 'ANSWER" in random_result.error  # gibberish is no reward, not a 0
    with pytest.raises(RewardModelError, match="local checkpoint"):
        TransformersVLM(tmp_path / "does-not-exist", device="cpu")
