"""Simulation layer: real robosuite physics, no mocks (whole file ~30-60 s on 2 cores)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest

pytest.importorskip("robosuite")

from sim import TASKS, make_demonstrator, make_env, resolve_robot


@pytest.fixture(scope="module")
def lift_env():
    env = make_env("lift", "Panda", seed=0)
    yield env
    env.close()


@pytest.fixture(scope="module")
def can_env():
    env = make_env("can", "Panda", seed=0)
    yield env
    env.close()


def _check_obs(env, obs):
    assert set(obs) == set(env.observation_space.spaces)
    for key, space in env.observation_space.spaces.items():
        assert obs[key].shape == space.shape, key
        assert obs[key].dtype == space.dtype, key
        assert np.all(np.isfinite(obs[key])), key
    assert env.observation_space.contains(obs)


@pytest.mark.parametrize(
    "fixture, state_dim, env_state_dim", [("lift_env", 18, 12), ("can_env", 18, 18)]
)
def test_spaces_shapes_dtypes(request, fixture, state_dim, env_state_dim):
    env = request.getfixturevalue(fixture)
    assert env.action_space.shape == (7,) and env.action_space.dtype == np.float32
    assert np.all(env.action_space.low == -1) and np.all(env.action_space.high == 1)
    assert env.observation_space["observation.state"].shape == (state_dim,)
    assert env.observation_space["observation.environment_state"].shape == (env_state_dim,)
    assert not any(k.startswith("observation.images.") for k in env.observation_space.spaces)
    assert env.fps == 20 and env.max_episode_steps == TASKS[env.task].horizon
    assert isinstance(env.task_text, str) and env.task_text
    obs, info = env.reset(seed=3)
    _check_obs(env, obs)
    assert info["success"] is False
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    _check_obs(env, obs)
    assert reward == 0.0 and terminated is False and truncated is False
    assert isinstance(info["success"], bool) and info["is_success"] == info["success"]
    # observation.state starts with the eef position and two orthonormal rotation columns
    r6 = obs["observation.state"][3:9]
    np.testing.assert_allclose([np.linalg.norm(r6[:3]), np.linalg.norm(r6[3:]), r6[:3] @ r6[3:]], [1, 1, 0], atol=1e-5)


def test_orientation_stays_continuous_over_a_scripted_episode(lift_env):
    """robosuite keeps its end-effector quaternion's w >= 0; pointing straight down (w ~ 0) it flips sign
    within an episode. The observation's 6-D rotation has no such jump: no state dimension moves more
    than 0.15 in one control step over a scripted Lift episode, in which the raw quaternion does jump."""
    raw_robosuite = lift_env.unwrapped_robosuite
    demo = make_demonstrator(lift_env, noise=0.3, seed=0)
    for seed in range(2):
        obs, _ = lift_env.reset(seed=seed)
        demo.reset(seed=seed)
        states, quats, done = [], [], False
        while not done:
            states.append(np.r_[obs["observation.state"], obs["observation.environment_state"]])
            quats.append(raw_robosuite._get_observations()["robot0_eef_quat_site"])
            obs, _, terminated, truncated, _ = lift_env.step(demo.act(obs))
            done = terminated or truncated
        assert np.abs(np.diff(states, axis=0)).max() < 0.15
        assert np.abs(np.diff(quats, axis=0)).max() > 1.0  # what the old observation carried


def test_rotation_6d_round_trip_and_the_robot_path_processes_poses_like_the_simulator(lift_env):
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.envs.observations import rotation_6d, rotation_from_6d
    from robo_reward.runtime.actor import proprio_state
    from robo_reward.safety.monitor import JointStateError

    q = np.random.default_rng(0).normal(size=(50, 4))
    r6 = rotation_6d(q)
    np.testing.assert_allclose(rotation_6d(-q), r6, atol=1e-12)  # q and -q: the same rotation
    np.testing.assert_allclose(rotation_6d(q / np.linalg.norm(q, axis=1, keepdims=True) * 3.0), r6, atol=1e-12)
    rot = rotation_from_6d(r6)
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), (50, 3, 3)), atol=1e-9)
    np.testing.assert_allclose(rot[..., :2].reshape(50, 6, order="F"), r6, atol=1e-9)
    with pytest.raises(ValueError, match="not a rotation quaternion"):
        rotation_6d([0.0, 0.0, 0.0, 0.0])
    # what a robot driver reports (named joints, eef pose as a quaternion) -> the simulator's observation
    obs, _ = lift_env.reset(seed=4)
    obs, *_ = lift_env.step(lift_env.action_space.sample())
    readings = lift_env.robot_readings()
    config = sim_hardware_config("lift", "Panda")
    state = proprio_state(config, readings["names"], readings["positions"], readings["ee_poses"])
    np.testing.assert_allclose(state, obs["observation.state"], atol=1e-6)
    pos, _ = readings["ee_poses"][0]
    for bad_pose in [(pos, np.zeros(4)), (pos, [np.nan, 0, 0, 1]), (pos * np.nan, [0, 0, 0, 1])]:
        with pytest.raises(JointStateError, match="end-effector pose"):  # the robot link: no observation
            proprio_state(config, readings["names"], readings["positions"], [bad_pose])


def test_camera_observation_and_render():
    env = make_env("lift", "Panda", cameras=("agentview",), image_size=(64, 64), render_camera="frontview",
                   render_size=(48, 80), seed=0)
    try:
        space = env.observation_space["observation.images.agentview"]
        assert space.shape == (64, 64, 3) and space.dtype == np.uint8
        obs, _ = env.reset(seed=0)
        _check_obs(env, obs)
        img = obs["observation.images.agentview"]
        # Upright image: agentview looks down at the white table, which fills the lower part of
        # the frame; the robot base and the floor are at the top (darker).
        top, bottom = img[:12].mean(), img[-12:].mean()
        assert bottom > top + 40, (top, bottom)
        obs, *_ = env.step(np.zeros(7, dtype=np.float32))
        assert obs["observation.images.agentview"].shape == (64, 64, 3)
        frame = env.render()
        assert frame.shape == (48, 80, 3) and frame.dtype == np.uint8
    finally:
        env.close()


def test_seeding_is_deterministic(lift_env, can_env):
    for env in (lift_env, can_env):
        global_state = np.random.get_state()
        a, _ = env.reset(seed=7)
        b, _ = env.reset(seed=7)
        c, _ = env.reset(seed=8)
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        assert not np.array_equal(a["observation.environment_state"], c["observation.environment_state"])
        # the process-wide NumPy generator is left alone
        after = np.random.get_state()
        assert after[0] == global_state[0] and np.array_equal(after[1], global_state[1])
    # unseeded resets continue the env's own stream (episodes differ)
    d, _ = lift_env.reset()
    e, _ = lift_env.reset()
    assert not np.array_equal(d["observation.environment_state"], e["observation.environment_state"])


def test_same_seed_same_trajectory(lift_env):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(8, 7)).astype(np.float32)
    finals = []
    for _ in range(2):
        obs, _ = lift_env.reset(seed=11)
        for a in actions:
            obs, *_ = lift_env.step(a)
        finals.append(obs)
    for key in finals[0]:
        np.testing.assert_array_equal(finals[0][key], finals[1][key])


def test_action_clipping_and_validation(lift_env):
    lift_env.reset(seed=0)
    big = lift_env.to_robosuite_action(np.full(7, 5.0))
    one = lift_env.to_robosuite_action(np.ones(7))
    np.testing.assert_array_equal(big, one)
    np.testing.assert_array_equal(lift_env.to_robosuite_action(-np.full(7, 3.0)), lift_env.to_robosuite_action(-np.ones(7)))
    lift_env.step(np.full(7, 100.0, dtype=np.float32))  # clipped, not an error
    for bad in (np.nan, np.inf, -np.inf):
        a = np.zeros(7, dtype=np.float32)
        a[2] = bad
        with pytest.raises(ValueError, match="non-finite"):
            lift_env.step(a)
    with pytest.raises(ValueError, match="shape"):
        lift_env.step(np.zeros(6, dtype=np.float32))


def test_unknown_task_robot_camera_errors():
    with pytest.raises(ValueError, match="'lift'.*'can'|'can'.*'lift'"):
        make_env("stack")
    with pytest.raises(ValueError, match="Panda"):
        make_env("lift", "NotARobot")
    with pytest.raises(ValueError, match="Panda"):
        make_env("can", "GR1")  # GR1 is only supported for lift
    with pytest.raises(ValueError, match="agentview"):
        make_env("can", "Panda", cameras=("no_such_camera",))


def test_time_limit_truncation():
    env = make_env("can", "Panda", horizon=4, seed=0)
    try:
        assert env.max_episode_steps == 4
        env.reset(seed=0)
        for t in range(1, 5):
            _, _, terminated, truncated, info = env.step(np.zeros(7, dtype=np.float32))
            assert terminated is False
            assert truncated is (t == 4)
            assert info["steps"] == t
    finally:
        env.close()


def _run_demo(env, demo, seed):
    obs, _ = env.reset(seed=seed)
    demo.reset(seed=1000 + seed)
    for _ in range(env.max_episode_steps):
        a = demo.act(obs)
        assert a.dtype == np.float32 and a.shape == env.action_space.shape
        assert np.all(np.abs(a) <= 1.0)
        obs, reward, terminated, truncated, info = env.step(a)
        if terminated or truncated:
            break
    if info["success"]:
        assert terminated and reward == 1.0
    return bool(info["success"])


@pytest.mark.parametrize("fixture", ["lift_env", "can_env"])
def test_scripted_demonstrator_succeeds(request, fixture):
    env = request.getfixturevalue(fixture)
    demo = make_demonstrator(env, noise=0.0, seed=0)
    successes = [_run_demo(env, demo, seed) for seed in range(5)]
    assert sum(successes) >= 4, successes


def test_noisy_demonstrator_is_valid_and_seeded(lift_env):
    d1 = make_demonstrator(lift_env, noise=1.0, seed=5)
    d2 = make_demonstrator(lift_env, noise=1.0, seed=5)
    obs, _ = lift_env.reset(seed=0)
    a1, a2 = d1.act(obs), d2.act(obs)
    np.testing.assert_array_equal(a1, a2)
    assert np.all(np.abs(a1) <= 1.0)
    with pytest.raises(ValueError):
        make_demonstrator(lift_env, noise=-0.1)


def test_gr1_constructs_and_steps():
    env = make_env("lift", "GR1", seed=0)
    try:
        assert env.robot_name == "GR1" and env.action_space.shape == (24,)
        assert env.observation_space["observation.state"].shape == (54,)
        assert env.observation_space["observation.environment_state"].shape == (15,)
        obs, _ = env.reset(seed=0)
        _check_obs(env, obs)
        demo = make_demonstrator(env, seed=0)
        rng = np.random.default_rng(0)
        for t in range(6):
            a = demo.act(obs) if t % 2 == 0 else rng.uniform(-1, 1, 24).astype(np.float32)
            obs, *_ = env.step(a)
            _check_obs(env, obs)
    finally:
        env.close()
    assert resolve_robot("gr1armsonly", "lift") == "GR1" and resolve_robot("panda", "can") == "Panda"


def test_the_humanoid_cube_lies_in_front_of_its_right_hand_across_resets():
    """GR1 Lift places the cube 0.2 m right of the table's midline (the right hand's side, y < 0), the
    Panda's stays centred; the offset holds over repeated resets and the placement range widens
    about the moved centre."""
    def cube_xy(robot, scale=1.0, seeds=range(6)):
        env = make_env("lift", robot, placement_scale=scale)
        try:
            return np.array([env.reset(seed=s)[0]["observation.environment_state"][:2] for s in seeds])
        finally:
            env.close()

    gr1, panda = cube_xy("GR1"), cube_xy("Panda")
    assert np.all(np.abs(gr1[:, 1] + 0.2) <= 0.03 + 1e-6), gr1
    assert np.all(np.abs(panda[:, 1]) <= 0.03 + 1e-6), panda
    assert np.all(np.abs(gr1[:, 0]) <= 0.03 + 1e-6) and np.all(np.abs(panda[:, 0]) <= 0.03 + 1e-6)
    wide = cube_xy("GR1", scale=1.5, seeds=range(20))
    assert np.all(np.abs(wide[:, 1] + 0.2) <= 0.045 + 1e-6) and np.abs(wide[:, 1] + 0.2).max() > 0.03


def test_a_step_returns_the_state_it_ended_in_however_often_the_state_was_read():
    """robosuite samples observables on its own schedule; a driver that reads the state for every
    message would otherwise see other observations (and a step would return a state that lagged its
    end by up to a control period)."""
    from sim import make_env

    action = np.array([0.3, -0.2, 0.5, 0.1, 0.0, 0.0, -1.0], np.float32)
    env = make_env("lift", "Panda", horizon=20)
    observed = []
    for reads in (0, 3):
        env.reset(seed=4)
        for _ in range(reads):
            env.robot_readings()
        obs = env.step(action)[0]
        np.testing.assert_array_equal(obs["observation.state"], env.observation()["observation.state"])
        observed.append(obs["observation.state"])
    np.testing.assert_array_equal(observed[0], observed[1])
    env.close()


def test_placement_scale_widens_where_the_cube_starts():
    """`eval --placement-scale 1.5` asks how a policy does beyond the placements it trained on: the
    Lift cube starts within +-3 cm of the table centre, and within +-4.5 cm at scale 1.5."""
    reach = {}
    for scale in (1.0, 1.5):
        env = make_env("lift", "Panda", placement_scale=scale)
        try:
            starts = [env.reset(seed=s)[0]["observation.environment_state"][:2] for s in range(60)]
        finally:
            env.close()
        reach[scale] = np.abs(starts).max()
    assert reach[1.0] <= 0.03 + 1e-6 < reach[1.5] <= 0.045 + 1e-6
    with pytest.raises(ValueError, match="placement_scale must be a positive number"):
        make_env("lift", "Panda", placement_scale=0.0)
    with pytest.raises(ValueError, match="placement_scale is for the lift task"):
        make_env("can", "Panda", placement_scale=1.5)
