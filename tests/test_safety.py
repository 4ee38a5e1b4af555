"""Hardware configs, the safety monitor and the reset manager: pure logic, no ROS."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import yaml

from robo_reward.config.hardware import (
    CONFIG_DIR,
    HardwareConfigError,
    load_hardware_config,
    parse_hardware_config,
)
from robo_reward.safety.monitor import SafetyMonitor
from robo_reward.safety.reset import Phase, ResetManager, plan_joint_motion

SHIPPED = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def test_every_shipped_config_validates():
    assert {"franka_panda", "ur5e", "so101", "xarm7", "gr1", "unitree_g1", "sim_panda_lift", "sim_panda_can",
            "sim_gr1_lift"} <= set(SHIPPED)
    for name in SHIPPED:
        cfg = load_hardware_config(name)
        assert cfg.name == name and cfg.num_joints == len(cfg.home.positions)
        assert (cfg.kind == "sim") == (cfg.sim is not None)


def _panda_dict() -> dict:
    return yaml.safe_load((CONFIG_DIR / "franka_panda.yaml").read_text())


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["joints"]["velocity_limit"].pop(), "field 'joints': velocity_limit has 6 values for 7 joints"),
    (lambda d: d["joints"].__setitem__("position_lower", [3.0] * 7), "position_lower must be below position_upper"),
    (lambda d: d["home"].__setitem__("positions", [0.0] * 7), "home.positions outside the joint limits"),
    (lambda d: d["workspace"].__setitem__("max", [0.1, 0.4, 0.6]), "field 'workspace': min"),
    (lambda d: d["command"].__setitem__("topic", "has space"), "field 'command.topic': 'has space' is not a valid"),
    (lambda d: d["cameras"][0].__setitem__("width", -1), "field 'cameras.0.width'"),
    (lambda d: d["cameras"].append(dict(d["cameras"][0])), "camera names repeat"),
    (lambda d: d.__setitem__("control_rate", 20), "field 'control_rate': unknown field"),
    (lambda d: d.pop("safety"), "field 'safety': Field required"),
    (lambda d: d["safety"].__setitem__("max_command_delta", [0.5] * 3), "has 3 values for command.action_dim 7"),
    (lambda d: d.__setitem__("kind", "sim"), "kind 'sim' needs a 'sim' section"),
    (lambda d: d["kinematics"][0]["joints"].__setitem__("elbow", "joint4"),
     "kinematics[0].joints ['elbow'] are not in joints.names"),
    (lambda d: d["kinematics"].append(copy.deepcopy(d["kinematics"][0])),
     "a joint is moved by two arms (['panda_joint1'"),
    (lambda d: d["kinematics"][0]["joints"].__setitem__("panda_joint2", "joint1"),
     "kinematics[0].joints maps two config joints to the model joints ['joint1']"),
    (lambda d: d.__setitem__("kinematics", d["kinematics"][0]),
     "field 'kinematics': expected a list with one entry per arm"),
    (lambda d: d["kinematics"][0].__setitem__("action_dims", [1, 2, 3, 4, 5, 6]),
     "kinematics action_dims [1, 2, 3, 4, 5, 6] must be the command's limited_dims [0, 1, 2, 3, 4, 5]"),
])
def test_bad_config_names_file_field_and_problem(tmp_path, edit, message):
    data = _panda_dict()
    edit(data)
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(HardwareConfigError) as err:
        load_hardware_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_unreadable_config_files(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(HardwareConfigError, match="broken.yaml: not valid YAML"):
        load_hardware_config(tmp_path / "broken.yaml")
    with pytest.raises(HardwareConfigError, match="missing.yaml: file not found"):
        load_hardware_config(tmp_path / "missing.yaml")
    with pytest.raises(HardwareConfigError, match="not one of .*franka_panda"):
        load_hardware_config("no_such_robot")
    with pytest.raises(HardwareConfigError, match="expected a mapping"):
        parse_hardware_config([1, 2], "list.yaml")


@pytest.fixture
def panda():
    return load_hardware_config("franka_panda")


def _feed(monitor, cfg, now, q=None, dq=None, ee=(0.5, 0.0, 0.3), force=(0, 0, 5), torque=(0, 0, 0.5)):
    q = cfg.home.positions if q is None else q
    names = list(cfg.joints.names) + ["panda_finger_joint1"]
    vel = list(dq if dq is not None else [0.0] * cfg.num_joints) + [0.0]
    return [monitor.update_joints(now, names, list(q) + [0.04], vel, now),
            monitor.update_ee_position(now, ee, now), monitor.update_wrench(now, force, torque, now)]


def _recover(monitor, cfg, now):
    _feed(monitor, cfg, now)
    assert monitor.reset(now)[0], monitor.status


def test_monitor_trips_latches_and_resets_only_when_safe(panda):
    mon = SafetyMonitor(panda)
    assert mon.tick(0.0) is None and not mon.ok  # nothing received yet: not OK, but nothing latched
    assert mon.status == "waiting for first data from ['joints', 'ee_pose/0', 'wrench']"
    assert mon.reset(0.0) == (False, "no fresh data from ['joints', 'ee_pose/0', 'wrench']")
    assert _feed(mon, panda, 1.0) == [None, None, None]
    assert mon.reset(1.0)[0] and mon.ok
    q = np.array(panda.home.positions)
    # each limit, one at a time; the latch keeps the first cause
    cases = [
        ({"q": q + np.r_[3.0, np.zeros(6)]}, "joint_position", "panda_joint1"),
        ({"dq": [0, 0, 0, 0, 0, 0, 3.0]}, "joint_velocity", "panda_joint7 at 3.000 rad/s exceeds 2.610"),
        ({"ee": (0.5, 0.0, 0.7)}, "workspace", "axis z"),
        ({"force": (0, 0, 31)}, "force", "|F| = 31.0 N exceeds 30.0 N"),
        ({"torque": (0, 9, 0)}, "torque", "exceeds 8.0 N m"),
    ]
    for t, (kwargs, kind, text) in enumerate(cases, start=2):
        _feed(mon, panda, float(t), **kwargs)
        assert not mon.ok and mon.violation.kind == kind and text in mon.violation.detail
        assert mon.reset(float(t))[0] is False  # still outside the limit: stays latched
        _feed(mon, panda, t + 0.5)
        assert mon.violation.kind == kind  # back inside, but latched until reset
        assert mon.reset(t + 0.5)[0] and mon.ok


def test_monitor_bad_inputs_commands_clock_and_estop(panda):
    mon = SafetyMonitor(panda)
    _feed(mon, panda, 1.0)
    _recover(mon, panda, 1.0)
    names = list(panda.joints.names)
    assert mon.update_joints(1.1, names[:-1], [0.0] * 6, None, 1.1).detail == \
        "joint_states lacks configured joints ['panda_joint7']"
    _recover(mon, panda, 1.1)
    q = list(panda.home.positions)
    q[2] = math.nan
    assert "non-finite position for joints ['panda_joint3']" in mon.update_joints(1.2, names, q, None, 1.2).detail
    _recover(mon, panda, 1.2)
    assert "7 joint names but 6 position" in mon.update_joints(1.3, names, q[:6], None, 1.3).detail
    _recover(mon, panda, 1.3)
    # commands: shape, NaN, and the per-element step limit (gripper may flip, arm may not jump)
    grip = [0.0] * 6 + [-1.0]
    assert mon.check_command(grip, 1.4) is None
    assert mon.check_command([0.0] * 6 + [1.0], 1.45) is None
    assert mon.check_command([0.6] + [0.0] * 5 + [1.0], 1.5).kind == "command_delta"
    _recover(mon, panda, 1.5)
    assert mon.check_command([0.0] * 3, 1.6).kind == "command"
    _recover(mon, panda, 1.6)
    # a stamp that goes back, or runs far ahead of the arrival clock, is a clock jump
    assert mon.update_joints(0.5, names, panda.home.positions, None, 1.7).kind == "clock"
    _recover(mon, panda, 1.7)
    assert "ahead of the arrival clock" in mon.update_joints(100.0, names, panda.home.positions, None, 1.8).detail
    # watchdog: data stops -> stale; e-stop latches and blocks reset while pressed
    mon = SafetyMonitor(panda)
    _feed(mon, panda, 10.0)
    mon.reset(10.0)
    assert mon.tick(10.1) is None and mon.tick(10.0 + panda.safety.stale_timeout_s + 0.01).kind == "stale"
    _feed(mon, panda, 11.0)
    mon.reset(11.0)
    assert mon.set_estop(True, 11.0).kind == "estop"
    assert mon.reset(11.0) == (False, "emergency stop still pressed")
    mon.set_estop(False, 11.05)
    assert mon.reset(11.05)[0]
    assert [e.kind for e in mon.events] == ["stale", "estop"]


def test_reset_motion_respects_velocity_limits(panda):
    start = np.array(panda.home.positions) + 0.5
    vmax = np.array(panda.joints.velocity_limit)
    plan = plan_joint_motion(start, panda.home.positions, vmax, 0.2, panda.control_period_s)
    np.testing.assert_allclose(plan[-1], panda.home.positions)
    steps = np.diff(np.vstack([start, plan]), axis=0) / panda.control_period_s
    assert np.all(np.abs(steps) <= 0.2 * vmax + 1e-9)
    assert np.abs(steps[0]).max() < np.abs(steps[len(steps) // 2]).max()  # starts gently


def test_reset_manager_never_starts_unsafe_or_unconfirmed(panda):
    rm = ResetManager(panda, seed=3)
    q = np.array(panda.home.positions) + 0.2
    assert rm.start_episode(q, True)[0] is False
    assert rm.begin_reset(q, safety_ok=False, now=0.0) == (False, ("safety monitor is not OK: resolve and reset it "
                                                                  "before moving"))
    assert rm.begin_reset(q, True, 0.0)[0] and rm.phase == Phase.RESETTING
    assert np.all(np.abs(rm.goal - panda.home.positions) <= panda.home.randomize + 1e-12)
    t = 0.0  # each target answered by the state it moves to, stamped one control period later
    while (target := rm.next_target(q, t, True, t)) is not None:
        q, t = target, t + panda.control_period_s
    assert rm.phase == Phase.AWAITING_CONFIRMATION  # real robot: the operator must confirm
    assert rm.start_episode(q, True)[0] is False
    assert rm.confirm(q, safety_ok=False)[0] is False
    assert rm.confirm(q, True, "alice") == (True, "confirmed by alice")
    assert rm.start_episode(q + 0.1, True) == (False, "cannot start: robot is not at the home pose")
    assert rm.start_episode(q, safety_ok=False)[0] is False
    assert rm.start_episode(q, True)[0] and rm.phase == Phase.RUNNING
    assert rm.begin_reset(q, True, t)[0] is False  # not while running
    rm.end_episode(True, "operator")
    assert rm.outcomes == [{"episode": 1, "success": True, "source": "operator"}]  # first_episode 1
    with pytest.raises(ValueError, match="first_episode must be >= 1, got -5"):
        ResetManager(panda, first_episode=-5)
    # safety lost mid-motion: the motion stops (no target) and the manager faults
    assert rm.begin_reset(q + 0.3, True, t)[0]
    assert rm.next_target(q + 0.3, t, True, t) is not None
    assert rm.next_target(q + 0.3, t, False, t) is None and rm.phase == Phase.FAULT
    assert rm.start_episode(q, True)[0] is False
    # a controller that never gets there: FAULT after the settle timeout, not an endless wait
    sim = copy.copy(load_hardware_config("sim_panda_lift"))
    rm = ResetManager(sim)
    stuck = np.array(sim.home.positions) + 0.5
    rm.begin_reset(stuck, True, 0.0)
    t = 0.0
    while rm.phase == Phase.RESETTING and t < 60:
        rm.next_target(stuck, t, True, t)
        t += sim.control_period_s
    assert rm.phase == Phase.FAULT and "home not reached" in rm.reason
    # sim robots need no operator: READY straight after the motion
    rm = ResetManager(sim)
    q = np.array(sim.home.positions)
    rm.begin_reset(q, True, 0.0)
    stamp = 0.0
    while (target := rm.next_target(q, stamp, True, 0.0)) is not None:
        q, stamp = target, stamp + sim.control_period_s
    rm.next_target(q, stamp, True, 0.0)
    assert rm.phase == Phase.READY


def test_home_is_judged_only_on_the_state_that_answered_the_last_target():
    """Lockstep simulation: each joint target is one physics step, answered by one new state. With the
    answer to the last target still in flight, the manager sends nothing more and does not call the
    robot home from the state before it — else the episode would be said to start from a state the
    robot has already left (and its reward stream would start a frame early)."""
    sim = load_hardware_config("sim_panda_lift")
    rm = ResetManager(sim, wait_for_answer=True)
    q, stamp = np.array(sim.home.positions), 0.0
    rm.begin_reset(q, True, 0.0)
    sent = 0
    while rm.phase == Phase.RESETTING:
        target = rm.next_target(q, stamp, True, 0.0)
        # the same state heard again (a lockstep robot publishes its last state while idle): nothing new
        assert rm.next_target(q, stamp, True, 0.0) is None and rm.phase in (Phase.RESETTING, Phase.READY)
        if target is None:
            break
        sent += 1
        q, stamp = target, stamp + sim.control_period_s
    assert rm.phase == Phase.READY and sent == len(rm._plan)
    # a robot that has not settled: the goal is held, once per answered state
    rm = ResetManager(sim, wait_for_answer=True)
    far = np.array(sim.home.positions) + 0.5
    rm.begin_reset(far, True, 0.0)
    stamp = 0.0
    for _ in range(len(rm._plan)):
        assert rm.next_target(far, stamp, True, 0.0) is not None
        stamp += sim.control_period_s
    assert rm.next_target(far, stamp, True, 0.1) is not None  # the goal, held
    assert rm.next_target(far, stamp, True, 0.2) is None  # not answered yet: nothing more in flight
    assert rm.next_target(far, stamp, True, 10.0) is None and rm.phase == Phase.FAULT  # settle timeout still applies
    # a target the robot never answers mid-motion (refused by the driver, lost): FAULT, not an endless wait
    rm = ResetManager(sim, wait_for_answer=True)
    rm.begin_reset(far, True, 0.0)
    assert rm.next_target(far, 0.0, True, 0.0) is not None
    assert rm.next_target(far, 0.0, True, rm.settle_timeout_s) is None and rm.phase == Phase.RESETTING
    assert rm.next_target(far, 0.0, True, rm.settle_timeout_s + 0.1) is None and rm.phase == Phase.FAULT
    assert "no joint state answered" in rm.reason


def test_a_real_robot_is_sent_a_home_target_every_period_and_judged_on_a_newer_state():
    """A real robot moves on its own clock and its joint states arrive with jitter: the targets
    stream one per control period whether or not a new state came in between (waiting for one
    would pause the arm mid-motion), home is still judged only on a state newer than the one the
    last target was sent from, and a joint state that stops updating is a FAULT."""
    sim = load_hardware_config("sim_panda_lift")
    rm = ResetManager(sim)
    q, stamp = np.array(sim.home.positions) + 0.3, 0.0
    rm.begin_reset(q, True, 0.0)
    targets, tick = [], 0
    while (target := rm.next_target(q, stamp, True, tick * sim.control_period_s)) is not None:
        targets.append(target)
        if tick % 2 == 1:  # a new state every other period, at the last target
            q, stamp = target, stamp + 2 * sim.control_period_s
        tick += 1
    # every planned target went out on consecutive periods; the goal was then held until a state
    # newer than the one the final goal target went out from showed the arm home
    np.testing.assert_allclose(targets[:len(rm._plan)], rm._plan)
    assert all((t == rm.goal).all() for t in targets[len(rm._plan):]) and len(targets) <= len(rm._plan) + 2
    assert rm.phase == Phase.READY
    # the same state heard again and again (a driver whose stamp froze): no home call from it, and
    # targets stream blind only as long as the monitor allows a stale state, then FAULT
    rm = ResetManager(sim)
    rm.begin_reset(rm_start := np.array(sim.home.positions) + 0.3, True, 0.0)
    sent, tick = 0, 0
    while rm.next_target(rm.goal if tick else rm_start, 0.0, True, tick * sim.control_period_s) is not None:
        sent, tick = sent + 1, tick + 1
    assert rm.phase == Phase.FAULT and "no joint state answered" in rm.reason
    assert sent == round(sim.safety.stale_timeout_s / sim.control_period_s) + 1


def test_without_kinematics_the_limiter_scales_the_arm_command_by_its_headroom(panda):
    """Hand-computed factors (slow_from 0.7, clearance 0.05 rad, braking 0.3 s; Panda joint 1: range
    +-2.8973 less the monitor's 0.05 rad margin, velocity limit 2.175 rad/s)."""
    import dataclasses

    from robo_reward.envs.limits import JointLimits, JointReading

    limits = dataclasses.replace(JointLimits.from_hardware(panda), arms=())
    command = np.array([0.2, -0.4, 0.6, 0.1, 0.0, -1.0])
    home = np.array(panda.home.positions)
    still = np.zeros(7)

    def factor(q, dq) -> float:
        limited = limits.limit(command, JointReading(q, dq))
        return float(limited[0] / command[0])

    assert factor(home, still) == 1.0
    fast = still.copy()
    fast[0] = 0.85 * 2.175  # half way from slow_from to the limit
    assert factor(home, fast) == pytest.approx(0.5)
    fast[0] = 2.3  # over the limit
    assert factor(home, fast) == 0.0
    upper, near, toward = 2.8973 - 0.05, home.copy(), still.copy()
    near[0], toward[0] = upper - 0.22, 0.5  # 0.22 rad from the limit, toward it at 0.5 rad/s
    assert factor(near, toward) == pytest.approx((0.22 - 0.05 - 0.5 * 0.3) / 0.05)
    assert factor(near, -toward) == 1.0  # moving away: the far limit counts
    near[0] = upper - 0.07  # standing close to a limit: the nearer one counts
    assert factor(near, still) == pytest.approx(0.02 / 0.05)


def test_the_limiters_arm_model_is_the_jacobian_robosuites_controller_uses():
    """The limiter's own MuJoCo model of the Panda (the hardware config's kinematics) gives the same
    end-effector Jacobian as robosuite's operational-space controller at the simulator's joints."""
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.envs.limits import JointLimits
    from sim import make_env

    limits = JointLimits.from_hardware(sim_hardware_config("lift", "Panda"))
    env = make_env("lift", "Panda", seed=0)
    rng = np.random.default_rng(0)
    controller = env._env.robots[0].composite_controller.part_controllers["right"]
    for episode in range(3):
        env.reset(seed=episode)
        for _ in range(5):
            env.step(rng.uniform(-1, 1, 7).astype(np.float32))
        controller.update(force=True)  # its Jacobian at the state the step ended in
        q = env.joint_state()["positions"]
        np.testing.assert_allclose(limits.arms[0].jacobian(q), np.vstack([controller.J_pos, controller.J_ori]), atol=1e-9)
    env.close()


def test_each_arm_of_the_humanoid_has_the_jacobian_its_controller_uses():
    """GR1: one model per arm (robosuite's standalone GR1, with legs, waist and head, its joints
    found by name), each arm's command moving only its own joints: the same Jacobians as robosuite's
    two operational-space controllers, and a block-diagonal joint map."""
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.envs.limits import JointLimits
    from sim import make_env

    limits = JointLimits.from_hardware(sim_hardware_config("lift", "GR1"))
    assert [list(arm.joint_index) for arm in limits.arms] == [list(range(7)), list(range(7, 14))]
    env = make_env("lift", "GR1", seed=0)
    rng = np.random.default_rng(0)
    controllers = env._env.robots[0].composite_controller.part_controllers
    for episode in range(2):
        env.reset(seed=episode)
        for _ in range(5):
            env.step(rng.uniform(-1, 1, 24).astype(np.float32))
        q = np.asarray(env.joint_state()["positions"])
        for arm, part in zip(limits.arms, ("right", "left")):
            controllers[part].update(force=True)
            np.testing.assert_allclose(arm.jacobian(q[arm.joint_index]),
                                       np.vstack([controllers[part].J_pos, controllers[part].J_ori]), atol=1e-9)
        steps, _ = limits.joint_steps(q)
        assert steps.shape == (14, 12) and not steps[:7, 6:].any() and not steps[7:, :6].any()
        assert np.abs(steps[:7, :6]).max() > 0 and np.abs(steps[7:, 6:]).max() > 0
    env.close()


def test_a_kinematics_joint_the_model_lacks_is_a_config_error(tmp_path):
    from robo_reward.envs.limits import JointLimits
    from robo_reward.errors import ConfigError

    data = _panda_dict()
    data["kinematics"][0]["joints"]["panda_joint7"] = "wrist_joint"
    path = tmp_path / "robot.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=r"robosuite:panda has no joints named \['wrist_joint'\]"):
        JointLimits.from_hardware(load_hardware_config(path))


@pytest.mark.slow
def test_the_humanoid_demonstrator_lifts_through_the_command_limiter():
    """GR1 Lift through the joint limit guard every policy acts through. With one scalar factor for
    both arms (no kinematics), or a cube at the table's midline (the right arm reaches it on its
    shoulder roll's stop), the guard held the arm short of the cube (0 and 5 of these 10 episodes);
    with each arm's kinematics and the cube in front of the right hand the scripted demonstrator
    lifts in all 10 (measured) and no joint leaves its limits."""
    from robo_reward.rl.runs import make_policy_env
    from sim import make_demonstrator

    env = make_policy_env({"task": "lift", "robot": "GR1"})
    limits, wins, q = env.limits, 0, []
    for seed in range(20, 30):
        obs, _ = env.reset(seed=seed)
        demonstrator = make_demonstrator(env.unwrapped, noise=0.0, seed=seed)
        demonstrator.reset(seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(demonstrator.act(obs))
            q.append(env.unwrapped.joint_state()["positions"])
            done = terminated or truncated
        wins += bool(info["is_success"])
    env.close()
    q = np.asarray(q)
    assert wins >= 8, wins
    assert (q <= limits.upper).all() and (q >= limits.lower).all()


@pytest.mark.slow
@pytest.mark.parametrize("pattern, tripped", [("down", "joint_position: robot0_joint6"),
                                              ("bang", "joint_velocity: robot0_joint5")])
def test_the_command_limiter_keeps_the_arm_inside_limits_that_raw_commands_trip(pattern, tripped):
    """Pressing the Panda's end effector straight down from home drives joint 6 into its upper limit;
    full-scale commands that flip sign every few steps spin joint 5 past its velocity limit. The
    safety monitor stops both raw command streams; through the limiter the monitor never trips, the
    arm still moves, and the executed action (the limited one) is what the env reports."""
    from robo_reward.config.hardware import sim_hardware_config
    from robo_reward.rl.runs import make_policy_env, make_sim_env

    cfg = sim_hardware_config("lift", "Panda")

    def command(t: int) -> np.ndarray:
        if pattern == "down":
            return np.array([0, 0, -1.0, 0, 0, 0, -1.0], np.float32)
        return np.r_[np.sign(np.sin(t * 1.3 + np.arange(6))), -1.0].astype(np.float32)

    def run(env) -> tuple[list, list, float]:
        monitor, trips, changes = SafetyMonitor(cfg, require_ee_pose=False, require_wrench=False), [], []
        obs, _ = env.reset(seed=0, options={"arm_joints": cfg.home.positions})
        path = 0.0  # metres the end effector travelled
        for t in range(60):
            action = command(t)
            before = obs["observation.state"][:3].copy()
            obs, _, _, _, info = env.step(action)
            path += float(np.linalg.norm(obs["observation.state"][:3] - before))
            state = env.unwrapped.joint_state()
            if monitor.update_joints(t * 0.05, state["names"], list(state["positions"]), list(state["velocities"]),
                                     t * 0.05) is not None:
                trips.append(str(monitor.violation))
                monitor.reset(t * 0.05)
                monitor.violation = None
            if "limit_change" in info:
                changes.append(info["limit_change"])
                executed = info["executed_action"]
                assert executed[6] == action[6]  # the gripper element passes unchanged
                assert info["limit_change"] == pytest.approx(float(np.abs(executed - action).max()), abs=1e-6)
        return trips, changes, path

    spec = {"task": "lift", "robot": "Panda", "horizon": 100}
    raw_trips, _, _ = run(make_sim_env(spec))
    assert raw_trips and raw_trips[0].startswith(tripped), raw_trips[:3]
    trips, changes, moved = run(make_policy_env(spec))
    assert trips == [] and max(changes) > 0.1 and moved > 0.1, (trips[:3], moved)
