"""The robot runtime's library side (no ROS): message codecs, time alignment, reward join, actor
weight swaps, the reward server's batching and bad samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reward_helpers import moving_square_frames, save_tiny_open_clip

from robo_reward.rewards.registry import load_reward_model
from robo_reward.rewards.shaping import RewardReading, RewardRule, ShapingConfig
from robo_reward.rl.residual import ResidualTD3, ResidualTD3Config
from robo_reward.runtime.actor import CommandGate, RuntimeActor
from robo_reward.runtime.codecs import (
    MessageError,
    Transition,
    decode_transition,
    encode_transition,
    encode_weights,
    image_to_rgb,
)
from robo_reward.runtime.learner import RewardJoin
from robo_reward.runtime.reward_server import FramesAtObservations, Observed, RewardServerCore, Sample
from robo_reward.runtime.sync import ApproximateTimeSync


def test_image_encodings_and_malformed_images():
    rgb = np.random.default_rng(0).integers(0, 255, (4, 5, 3), dtype=np.uint8)
    pad = 3  # rows padded beyond width*channels, as some drivers do
    for enc, pixels in [("rgb8", rgb), ("bgr8", rgb[..., ::-1]), ("rgba8", np.dstack([rgb, np.full((4, 5), 7)])),
                        ("bgra8", np.dstack([rgb[..., ::-1], np.full((4, 5), 7)]))]:
        c = pixels.shape[2]
        rows = np.zeros((4, 5 * c + pad), np.uint8)
        rows[:, : 5 * c] = pixels.reshape(4, -1)
        np.testing.assert_array_equal(image_to_rgb(enc, 4, 5, 5 * c + pad, rows.tobytes()), rgb)
    gray = rgb[..., 0]
    assert np.array_equal(image_to_rgb("mono8", 4, 5, 5, gray.tobytes())[..., 2], gray)
    with pytest.raises(MessageError, match="encoding '16UC1' not supported"):
        image_to_rgb("16UC1", 4, 5, 10, bytes(40))
    with pytest.raises(MessageError, match="has 59 bytes, expected step\\*height = 60"):
        image_to_rgb("rgb8", 4, 5, 15, bytes(59))
    with pytest.raises(MessageError, match="step 14 is shorter"):
        image_to_rgb("rgb8", 4, 5, 14, bytes(56))
    with pytest.raises(MessageError, match="empty"):
        image_to_rgb("rgb8", 0, 5, 15, b"")


def _transition(obs_dim=4, act_dim=2, **kw):
    rng = np.random.default_rng(1)
    return Transition(rng.normal(size=obs_dim).astype(np.float32), rng.normal(size=act_dim).astype(np.float32),
                      rng.normal(size=act_dim).astype(np.float32), rng.normal(size=obs_dim).astype(np.float32),
                      rng.normal(size=act_dim).astype(np.float32), stamp=1_795_000_000.123456, obs_stamp=1_795_000_000.073456, episode=3, step=41, **kw)


def test_transition_round_trip_and_rejects():
    t = _transition(truncated=True, intervention=True, reward=1.0, progress=0.25, success=True)
    back = decode_transition(encode_transition(t), 4, 2)
    assert back.stamp == t.stamp and back.episode == 3 and back.step == 41 and back.truncated and back.intervention
    assert not back.terminated and back.reward == 1.0 and back.obs_stamp == t.obs_stamp
    assert back.progress == 0.25 and np.isnan(back.next_progress) and back.success  # NaN: no reading there
    for name in ("obs", "base_action", "action", "next_obs", "next_base_action"):
        np.testing.assert_array_equal(getattr(back, name), getattr(t, name))
    data = encode_transition(t)
    with pytest.raises(MessageError, match="do not match the learner's"):
        decode_transition(data, 5, 2)
    with pytest.raises(MessageError, match="expected"):
        decode_transition(data[:-1], 4, 2)
    bad = data.copy()
    bad[-1] = np.nan
    with pytest.raises(MessageError, match="NaN"):
        decode_transition(bad, 4, 2)
    with pytest.raises(MessageError, match="header"):
        decode_transition(data[:3], 4, 2)
    bad = data.copy()
    bad[2] = np.inf  # the stamp
    with pytest.raises(MessageError, match="stamps"):
        decode_transition(bad, 4, 2)


def _blob(learner: ResidualTD3, version: int, session: str = "a", **meta) -> bytes:
    return encode_weights(learner.actor_tensors(), {"session": session, "version": version, "obs_dim": 4,
                                                     "act_dim": 2, "learner": learner.cfg.to_dict(), **meta})


def test_actor_swaps_weights_atomically_and_refuses_foreign_ones():
    cfg = ResidualTD3Config(actor_hidden=(16,), critic_hidden=(16,), num_q=2)
    learner = ResidualTD3(4, 2, cfg, "cpu")
    learner.obs_normalizer.fit(np.random.default_rng(0).normal(size=(50, 4)))
    with torch.no_grad():
        learner.actor.net[-1].bias.fill_(0.5)  # a trained residual: not the zero init
    actor = RuntimeActor(None, 2)
    obs, base = np.array([0.1, -0.2, 0.3, 0.4], np.float32), np.zeros(2, np.float32)
    action = actor.choose(obs, base, explore=False)
    assert np.all(action == 0) and actor.version == 0  # no weights yet: the base alone
    assert actor.load_weights(_blob(learner, 1)) == 1
    np.testing.assert_allclose(actor.choose(obs, base, explore=False), learner.act(obs, base),
                               atol=1e-6)
    assert np.all(actor.choose(obs, base, explore=False) != 0)
    with pytest.raises(MessageError, match="not newer"):
        actor.load_weights(_blob(learner, 1))  # the latched replay of what is running
    assert actor.load_weights(_blob(learner, 1, session="b")) == 1  # a restarted learner: new session
    with pytest.raises(MessageError, match="obs 5 / action 2"):
        actor.load_weights(encode_weights(learner.actor_tensors(), {"session": "c", "version": 9, "obs_dim": 5,
                                                                    "act_dim": 2, "learner": cfg.to_dict()}))
    with pytest.raises(MessageError, match="cannot be decoded"):
        actor.load_weights(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(MessageError, match="do not fit the network"):
        wide = ResidualTD3(4, 2, ResidualTD3Config(actor_hidden=(32,), critic_hidden=(16,), num_q=2), "cpu")
        actor.load_weights(encode_weights(wide.actor_tensors(), {"session": "d", "version": 1, "obs_dim": 4,
                                                                 "act_dim": 2, "learner": cfg.to_dict()}))
    with pytest.raises(MessageError, match="residual_scale has 3 values; the action has 2"):
        actor.load_weights(encode_weights(learner.actor_tensors(), {
            "session": "e", "version": 1, "obs_dim": 4, "act_dim": 2,
            "learner": {**cfg.to_dict(), "residual_scale": [0.1, 0.1, 1.0]}}))
    assert actor.version == 1  # every refusal left the running weights in place
    with pytest.raises(MessageError, match="policy expects 4"):
        actor.choose(np.zeros(5, np.float32), base, explore=False)


def test_a_robot_actor_explores_as_its_weights_learner_config_says():
    """The exploration the learner was configured with reaches the robot: pink noise or held pushes arrive
    inside the weights' config and the next episode drifts (lag-1 correlation), where white noise does not."""
    def deviations(**exploration) -> np.ndarray:
        cfg = ResidualTD3Config(actor_hidden=(16,), critic_hidden=(16,), num_q=2, **exploration)
        actor = RuntimeActor(None, 2, seed=3)
        actor.load_weights(_blob(ResidualTD3(4, 2, cfg, "cpu"), 1))  # a fresh residual: zero, noise only
        out = []
        for _ in range(50):
            actor.start_episode(horizon=100)
            out.append([actor.choose(np.zeros(4, np.float32), np.zeros(2, np.float32), explore=True)
                        for _ in range(100)])
        return np.asarray(out)

    # the lag-1 correlation each must show (pink ~0.7; pushes ~0.46: noise still rides on a held push), or
    # None: white, uncorrelated
    for exploration, least in (({}, None), ({"exploration_noise_beta": 1.0}, 0.5),
                               ({"exploration_push_prob": 0.3, "exploration_push_steps": 20}, 0.3)):
        x = deviations(**exploration)
        lag1 = np.mean(x[:, 1:] * x[:, :-1]) / np.mean(x * x)
        assert (lag1 > least) if least is not None else (abs(lag1) < 0.1), (exploration, lag1)


def test_a_robot_actor_stores_the_commanded_action_only_when_its_weights_config_says():
    cfg = ResidualTD3Config(actor_hidden=(16,), critic_hidden=(16,), num_q=2)
    actor = RuntimeActor(None, 2)
    assert not actor.learns_commanded_action  # no weights yet: what went out, as a default learner stores
    actor.load_weights(_blob(ResidualTD3(4, 2, cfg, "cpu"), 1))
    assert not actor.learns_commanded_action
    cfg.learn_commanded_action = True
    actor.load_weights(_blob(ResidualTD3(4, 2, cfg, "cpu"), 2))
    assert actor.learns_commanded_action


def test_command_gate():
    gate = CommandGate(stale_timeout_s=0.1)
    fresh = {"joints": 10.0, "ee/0": 9.97}
    assert gate.check(10.05, True, True, fresh) == (True, "ok")
    assert gate.check(10.05, False, True, fresh) == (False, "safety monitor not OK")
    assert gate.check(10.05, True, False, fresh) == (False, "no episode running")
    assert gate.check(10.2, True, True, fresh) == (False, "stale observation: ['joints', 'ee/0']")


def test_time_alignment():
    sync = ApproximateTimeSync(["front", "wrist", "joints"], tolerance_s=0.01)
    out = []
    for k in range(5):  # wrist 4 ms late, joints 2 ms early; joints arrive first
        t = 100.0 + 0.05 * k
        out += sync.add("joints", t - 0.002, f"j{k}")
        out += sync.add("front", t, f"f{k}")
        out += sync.add("wrist", t + 0.004, f"w{k}")
    assert [s.items for s in out] == [{"front": f"f{k}", "wrist": f"w{k}", "joints": f"j{k}"} for k in range(5)]
    assert max(s.skew_s for s in out) == pytest.approx(0.004)
    # the wrist camera drops a frame: that front frame is given up once the wrist has moved past it
    assert sync.add("front", 100.25, "f5") == [] and sync.add("joints", 100.25, "j5") == []
    assert sync.add("wrist", 100.304, "w6") == [] and sync.dropped == 1
    # a clock that jumps back restarts the stream instead of pairing across the jump
    assert sync.add("front", 50.0, "late") == []


def test_reward_join_matches_both_observations_by_stamp_and_never_invents():
    join = RewardJoin(tolerance_s=0.01, max_wait_s=1.0)
    t1, t2 = _transition(), _transition()
    t1.obs_stamp, t1.stamp, t2.obs_stamp, t2.stamp = 9.95, 10.0, 10.0, 10.05
    join.add_transition(t1, now=0.0)
    join.add_transition(t2, now=0.0)
    assert join.ready(now=0.1) == []  # waits for its readings
    join.add_reading(10.051, RewardReading(0.7, False, 0.0))
    join.add_reading(10.003, RewardReading(0.6, True, 1.0))
    assert join.ready(now=0.2) == []  # keeps order: t1 still lacks the reading of its first observation
    (ready,) = join.ready(now=1.5)  # t1 overdue: dropped
    assert join.dropped == 1 and ready is t2 or (ready.obs_stamp, ready.stamp) == (10.0, 10.05)
    assert (ready.progress, ready.next_progress, ready.success, ready.reward) == (0.6, 0.7, False, 0.0)
    rule = RewardRule(ShapingConfig(gamma=0.9))
    assert rule(*ready.readings()) == pytest.approx(0.9 * 0.7 - 0.6)


def test_reward_join_makes_terminal_only_what_its_own_reading_calls_a_success():
    """The robot ended both episodes on a success call (terminated): where the reading of the
    transition's own next observation calls it too, a terminal success; where it came from another
    frame, a cut (truncated, bootstrapped) — never a terminal state the reward pays nothing for."""
    join = RewardJoin(tolerance_s=0.01)
    ends = [_transition(terminated=True), _transition(terminated=True)]
    for episode, t in enumerate(ends):
        t.episode, t.obs_stamp, t.stamp = episode, 10.0 + episode, 10.05 + episode
        join.add_transition(t, now=0.0)
        join.add_reading(t.obs_stamp, RewardReading(0.8, False, 0.0))
    join.add_reading(10.05, RewardReading(1.0, True, 1.0))
    join.add_reading(11.05, RewardReading(0.9, False, 0.0))  # its success call came from a frame between
    success, cut = join.ready(now=0.1)
    assert (success.terminated, success.truncated, success.success) == (True, False, True)
    assert (cut.terminated, cut.truncated, cut.success) == (False, True, False)


def test_a_restarted_reset_manager_gives_the_learner_new_episodes_not_old_ids():
    """A reset manager relaunched mid-run (a crash, a `ros2 launch` restart) while the actor and the
    learner keep running: the learner's join drops the steps of an episode it saw succeed, so the
    restarted manager's first episode must not reuse an id — with both numbering from 1 it was dropped
    whole as `after_success`. Each manager is driven home and into an episode as the node drives it."""
    from robo_reward.config.hardware import load_hardware_config
    from robo_reward.safety.reset import Phase, ResetManager, restart_safe_first_episode

    sim = load_hardware_config("sim_panda_lift")
    join, kept = RewardJoin(tolerance_s=0.01), []
    for launched in (1_796_000_000.0, 1_796_000_042.5):  # the second node 42.5 s after the first
        manager = ResetManager(sim, first_episode=restart_safe_first_episode(launched))
        q, stamp = np.array(sim.home.positions) + 0.05, 0.0
        manager.begin_reset(q, True, 0.0)
        while manager.phase == Phase.RESETTING:
            target = manager.next_target(q, stamp, True, 0.0)
            q, stamp = (q if target is None else target), stamp + sim.control_period_s
        assert manager.start_episode(q, True)[0]
        for step in range(3):  # its last step is the reward model's success call
            t = _transition(terminated=step == 2)
            t.episode, t.step, t.obs_stamp, t.stamp = manager.episode, step, launched + step, launched + step + 1
            join.add_transition(t, now=0.0)
            join.add_reading(t.obs_stamp, RewardReading(0.5, False, 0.0))
            join.add_reading(t.stamp, RewardReading(1.0, step == 2, float(step == 2)))
        kept += join.ready(now=0.0)
        manager.end_episode(True, "reward")
    assert join.after_success == 0 and len(kept) == 6
    assert [(t.step, t.success) for t in kept] == [(0, False), (1, False), (2, True)] * 2
    assert len({t.episode for t in kept}) == 2


def test_reward_server_batches_and_reports_bad_samples(tmp_path):
    model = load_reward_model(save_tiny_open_clip(tmp_path / "clip"), device="cpu")
    frames = moving_square_frames(6)
    samples = [Sample(float(i), {"agentview": frames[i]}) for i in range(6)]
    one_by_one = RewardServerCore(model, "lift the red cube")
    single = [o for s in samples for o in one_by_one.process([s])]
    batched_core = RewardServerCore(model, "lift the red cube")
    batched = batched_core.process(samples[:1]) + batched_core.process(samples[1:])  # a backlog of 5
    np.testing.assert_allclose([o.progress for o in batched], [o.progress for o in single], atol=1e-5)
    np.testing.assert_allclose([o.reward for o in batched], [o.reward for o in single], atol=1e-5)
    assert all(o.ok for o in single) and np.isfinite([o.progress for o in single]).all()
    bad = [Sample(6.0, {"agentview": frames[0][:, :, :2]}), Sample(7.0, {"wrist": frames[0]}), samples[2]]
    outputs = batched_core.process(bad)
    assert [o.ok for o in outputs] == [False, False, True]
    assert "camera 'agentview'" in outputs[0].error and "lacks camera 'agentview'" in outputs[1].error
    assert np.isnan(outputs[0].reward)  # no made-up reward
    with pytest.raises(Exception, match="task text is empty"):
        batched_core.set_task("  ")
    batched_core.set_task("open the drawer")
    assert batched_core.process([samples[3]])[0].ok  # a new task restarts the stream


def test_each_observation_the_actor_acts_on_is_scored_from_the_frames_nearest_its_time():
    """20 Hz control beside a 30 Hz camera: every observation the actor acted on gets the aligned frame
    set nearest its time, once a frame at or after that time is in (camera latency: observations are
    announced first), in order; one without a frame within the tolerance gets none after the wait."""
    pairing = FramesAtObservations(tolerance_s=0.02, max_wait_s=0.5)
    for j in range(4):
        pairing.add_observation(Observed(j / 20 + 0.004, episode=1, arrived=0.0))
    assert pairing.ready(now=0.1) == []  # no frame at or after the first observation's time yet
    for k in range(5):  # frames at 0, 33, 67, 100, 133 ms
        pairing.add_frames(k / 30, {"agentview": k})
    paired = pairing.ready(now=0.1)
    assert [(round(o.stamp, 3), frames["agentview"]) for o, frames in paired] == [(0.004, 0), (0.054, 2), (0.104, 3)]
    assert pairing.ready(now=0.4) == []  # 154 ms: the frame after it may still come
    ((late, frames),) = pairing.ready(now=0.6)
    assert round(late.stamp, 3) == 0.154 and frames is None  # the nearest, 133 ms, is 21 ms away: no frames
    pairing.add_observation(Observed(0.1, episode=2, arrived=0.7))  # a frame set exactly at its time
    assert [frames["agentview"] for _, frames in pairing.ready(now=0.7)] == [3]
    # each observation steps the stream once: announced again (a restarted actor), or its frames
    # published again under their own stamp (an idle lockstep sim), it is left out
    pairing.add_observation(Observed(0.1, episode=2, arrived=0.8))
    pairing.add_frames(4 / 30, {"agentview": 4})
    assert pairing.ready(now=0.8) == [] and pairing.repeated == 2
    # a decided observation keeps its frames however long inference takes to come to it
    pairing.add_observation(Observed(0.2, episode=2, arrived=0.8))
    for k in range(5, 100):
        pairing.add_frames(k / 30, {"agentview": k})
    assert [frames["agentview"] for _, frames in pairing.ready(now=9.0)] == [6]
    # after the clock jumps back, an observation of the new clock waits for frames of its own clock
    pairing.add_observation(Observed(1.0, episode=3, arrived=9.0))
    assert pairing.ready(now=9.1) == []
    pairing.add_frames(1.0, {"agentview": "new clock"})
    assert [frames["agentview"] for _, frames in pairing.ready(now=9.1)] == ["new clock"]


def test_reward_server_survives_a_bad_first_frame(tmp_path):
    """A first frame the model cannot score must not leave a half-started stream behind: the next
    good frame starts the episode's stream, and every frame after it is read as from a clean start."""
    model = load_reward_model(save_tiny_open_clip(tmp_path / "clip"), device="cpu")
    frames = moving_square_frames(4)
    core = RewardServerCore(model, "lift the red cube")
    reference = RewardServerCore(model, "lift the red cube")
    first = core.process([Sample(0.0, {"agentview": frames[0][:, :, :2]})])
    assert not first[0].ok and np.isnan(first[0].progress)
    outputs = [core.process([Sample(float(i), {"agentview": frames[i]})])[0] for i in range(1, 4)]
    expected = [reference.process([Sample(float(i), {"agentview": frames[i]})])[0] for i in range(1, 4)]
    assert all(o.ok for o in outputs)
    np.testing.assert_allclose([o.progress for o in outputs], [o.progress for o in expected], atol=1e-6)
