"""How a policy fails: every episode of a seeded evaluation sorted by what the simulator saw.
Lift: the gripper never came within reach of the cube, reached it but never grasped it, grasped it but
did not lift it above the success height (dropped or too weak), or succeeded. PickPlaceCan: never
grasped the can, grasped it but never brought it over the target bin, held it over the bin to the
end, let go with the can landing outside the bin, or left it in the bin with the hand still at it
(robosuite counts a placed can only once the hand is ~4 cm away). Judged on the tuning seeds
(900,000+) by default: what is learned here may steer tuning, so it must not look at the report seeds.

    MUJOCO_GL=egl .venv/bin/python bench/bench_failure_modes.py --policy runs/bench/learning/lift/data/base \\
        --policy runs/bench/learning/lift/residual/seed0/step_24000 --episodes 100

Writes bench/results/failure_modes.json (per policy: counts per mode and per episode)."""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TUNING_SEED = -100_000  # as bench_learning: `eval --seed` -> seeds 900,000+
REACH_M = 0.02  # gripper-to-cube distance counted as within reach


def _one_arm(part):
    """robosuite keeps a robot's gripper and end-effector site per arm (a dict) or as one: the single arm's."""
    return next(iter(part.values())) if isinstance(part, dict) else part


def _gripper(rs):
    return _one_arm(rs.robots[0].gripper)


def _hand_offset(rs, obj_pos: np.ndarray) -> list[float]:
    """The hand (end-effector site) minus the object's body position, in mm-rounded metres."""
    hand = rs.sim.data.site_xpos[_one_arm(rs.robots[0].eef_site_id)]
    return [round(float(v), 3) for v in hand - obj_pos]


def lift_step_state(env) -> dict:
    """The robosuite Lift state behind the env: cube height above the table, grasp, gripper distance."""
    rs = env.unwrapped._env
    gripper = _gripper(rs)
    cube = rs.sim.data.body_xpos[rs.cube_body_id]
    height = float(cube[2] - rs.model.mujoco_arena.table_offset[2])
    return {"height": height, "cube_xy": [round(float(v), 4) for v in cube[:2]], "hand_offset": _hand_offset(rs, cube),
            "grasp": bool(rs._check_grasp(gripper=gripper, object_geoms=rs.cube)),
            "distance": float(rs._gripper_to_target(gripper, rs.cube.root_body, target_type="body",
                                                    return_distance=True))}


def lift_failure_mode(steps: list[dict], success: bool) -> str:
    """A grasp is judged first: the gripper-to-cube body distance can stay above REACH_M while the
    fingers hold the cube (robosuite's grasp check is contact-based)."""
    if success:
        return "success"
    if any(s["grasp"] for s in steps):
        return "grasped, not lifted"
    if min(s["distance"] for s in steps) > REACH_M:
        return "never reached"
    return "reached, never grasped"


def can_step_state(env) -> dict:
    """The robosuite PickPlaceCan state behind the env: grasp, whether the can is over its target bin
    (x, y inside the bin's quarter, any height) and in it (robosuite's `not_in_bin`), hand distance."""
    rs = env.unwrapped._env
    can = rs.objects[rs.object_id]
    pos = rs.sim.data.body_xpos[rs.obj_body_id[can.name]]
    over = [pos[0], pos[1], rs.bin2_pos[2] + 0.05]  # the bin test at a height inside it: x, y only
    gripper = _gripper(rs)
    return {"height": float(pos[2] - rs.bin2_pos[2]), "grasp": bool(rs._check_grasp(gripper=gripper, object_geoms=can.contact_geoms)),
            "over_bin": not rs.not_in_bin(over, rs.object_id), "in_bin": not rs.not_in_bin(pos, rs.object_id),
            "hand_offset": _hand_offset(rs, pos),
            "distance": float(rs._gripper_to_target(gripper, can.root_body, target_type="body",
                                                    return_distance=True))}


def can_failure_mode(steps: list[dict], success: bool) -> str:
    if success:
        return "success"
    if not any(s["grasp"] for s in steps):
        return "never grasped"
    if not any(s["grasp"] and s["over_bin"] for s in steps):
        return "grasped, never over the bin"
    if steps[-1]["in_bin"]:
        return "in the bin, hand still at the can"
    if steps[-1]["grasp"]:
        return "held over the bin to the end"
    return "let go, can outside the bin"


# task -> (the simulator's state after each step, the episode's mode from those states, the modes in order)
FAILURE_MODES = {
    "lift": (lift_step_state, lift_failure_mode,
             ("success", "never reached", "reached, never grasped", "grasped, not lifted")),
    "can": (can_step_state, can_failure_mode,
            ("success", "never grasped", "grasped, never over the bin", "held over the bin to the end",
             "let go, can outside the bin", "in the bin, hand still at the can")),
}


class ActionLog:
    """The policy under test, its actions kept per episode (for the traces)."""

    def __init__(self, policy):
        self.policy, self.actions = policy, []

    def reset(self, seed: int | None = None) -> None:
        self.actions.append([])
        self.policy.reset(seed)

    def act(self, obs):
        action = self.policy.act(obs)
        self.actions[-1].append([round(float(v), 2) for v in action])
        return action


def analyse(policy_dir: str, episodes: int, seed: int, trace: tuple[int, ...] = (), trace_every: int = 10) -> dict:
    """`trace`: episodes (0-based, of this evaluation) whose action and hand-to-object offset are kept
    every `trace_every` steps — where a stalled hand stops, and what it is told."""
    from robo_reward.rl.evaluation import evaluate
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env

    policy, manifest = load_policy(policy_dir, "cpu")
    env = make_policy_env(manifest["env"])
    task = manifest["env"].get("task")
    if task not in FAILURE_MODES or manifest["env"].get("robot", "Panda") != "Panda":
        raise SystemExit(f"{policy_dir}: failure modes are defined for the Panda's {' and '.join(FAILURE_MODES)}, "
                         f"not {manifest['env'].get('robot')} {task}")
    step_state, failure_mode, mode_names = FAILURE_MODES[task]
    steps: dict[int, list[dict]] = {}
    policy = ActionLog(policy)
    result = evaluate(env, policy, episodes, seed=seed, progress=True,
                      on_step=lambda i, e: steps.setdefault(i, []).append(step_state(e)))
    rows = []
    for i, success in enumerate(result.successes):
        s = steps[i]
        grasped = [t for t, x in enumerate(s) if x["grasp"]]
        rows.append({"seed": result.seeds[i], "mode": failure_mode(s, success), "length": len(s),
                     "first_grasp_step": grasped[0] if grasped else None, "grasp_steps": len(grasped),
                     "max_height": round(max(x["height"] for x in s), 4),
                     "min_distance": round(min(x["distance"] for x in s), 4),
                     **({"cube_xy": s[0]["cube_xy"]} if "cube_xy" in s[0] else {})})
    modes = {m: sum(r["mode"] == m for r in rows) for m in mode_names}
    first_grasp = [r["first_grasp_step"] for r in rows if r["first_grasp_step"] is not None]
    return {"policy": policy_dir, "episodes": episodes, "seeds": [result.seeds[0], result.seeds[-1]],
            "modes": modes, "mean_first_grasp_step": float(np.mean(first_grasp)) if first_grasp else None,
            "per_episode": rows,
            "traces": {str(i): {"mode": rows[i]["mode"], "every": trace_every,
                                "action": policy.actions[i][::trace_every],
                                "hand_offset": [x["hand_offset"] for x in steps[i][::trace_every]]}
                       for i in trace if i < episodes}}


def readable_json(record: dict) -> str:
    """Indented, with each episode and each trace on one line (a few hundred lines instead of thousands)."""
    compact = {f"@{name}@{part}@": result.get(part, {} if part == "traces" else [])
               for name, result in record["policies"].items() for part in ("per_episode", "traces")}
    text = json.dumps({**record, "policies": {name: {**result, **{part: f"@{name}@{part}@" for part in ("per_episode", "traces")}}
                                              for name, result in record["policies"].items()}}, indent=1)
    for key, value in compact.items():
        lines = [json.dumps(e) for e in value] if isinstance(value, list) else \
            [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in value.items()]
        brackets = "[]" if isinstance(value, list) else "{}"
        text = text.replace(json.dumps(key), brackets[0] + "\n" + ",\n".join(lines) + "\n" + brackets[1])
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", action="append", required=True, help="policy directory (repeat to compare)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=TUNING_SEED, help="`eval --seed` (default: the tuning seeds)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "failure_modes.json"))
    p.add_argument("--trace", type=int, nargs="*", default=[],
                   help="episodes (0-based) whose actions and hand-to-object offsets are kept every 10 steps and printed")
    args = p.parse_args()
    if args.episodes < 1:
        p.error(f"--episodes: {args.episodes} must be a positive whole number")
    if any(not 0 <= i < args.episodes for i in args.trace):
        p.error(f"--trace: episodes must lie in 0..{args.episodes - 1}, got {args.trace}")
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"policies": {}}
    for policy in args.policy:
        result = analyse(policy, args.episodes, args.seed, tuple(args.trace))
        record["policies"][policy] = result
        record["machine"] = f"{platform.processor() or platform.machine()}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(readable_json(record))
        print(f"{policy}: {result['modes']} (mean first grasp at step {result['mean_first_grasp_step']})", flush=True)
        for i, trace in result["traces"].items():
            print(f"  episode {i} ({trace['mode']}): step, action, hand - object [m]")
            for k, (action, offset) in enumerate(zip(trace["action"], trace["hand_offset"])):
                print(f"    {k * trace['every']:4d}  {action}  {offset}")


if __name__ == "__main__":
    main()
