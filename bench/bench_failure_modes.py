"""How a Lift policy fails: every episode of a seeded evaluation sorted by what the simulator saw —
the gripper never came within reach of the cube, reached it but never grasped it, grasped it but did
not lift it above the success height (dropped or too weak), or succeeded (with the step of the first
grasp and of success). Judged on the tuning seeds (900,000+) by default: what is learned here may
steer tuning, so it must not look at the report seeds.

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


def lift_step_state(env) -> dict:
    """The robosuite Lift state behind the env: cube height above the table, grasp, gripper distance."""
    rs = env.unwrapped._env
    gripper = rs.robots[0].gripper
    gripper = next(iter(gripper.values())) if isinstance(gripper, dict) else gripper
    cube = rs.sim.data.body_xpos[rs.cube_body_id]
    height = float(cube[2] - rs.model.mujoco_arena.table_offset[2])
    return {"height": height, "cube_xy": [round(float(v), 4) for v in cube[:2]], "grasp": bool(rs._check_grasp(gripper=gripper, object_geoms=rs.cube)),
            "distance": float(rs._gripper_to_target(gripper, rs.cube.root_body, target_type="body",
                                                    return_distance=True))}


def failure_mode(steps: list[dict], success: bool) -> str:
    """A grasp is judged first: the gripper-to-cube body distance can stay above REACH_M while the
    fingers hold the cube (robosuite's grasp check is contact-based)."""
    if success:
        return "success"
    if any(s["grasp"] for s in steps):
        return "grasped, not lifted"
    if min(s["distance"] for s in steps) > REACH_M:
        return "never reached"
    return "reached, never grasped"


def analyse(policy_dir: str, episodes: int, seed: int) -> dict:
    from robo_reward.rl.evaluation import evaluate
    from robo_reward.rl.policies import load_policy
    from robo_reward.rl.runs import make_policy_env

    policy, manifest = load_policy(policy_dir, "cpu")
    env = make_policy_env(manifest["env"])
    if manifest["env"].get("task") != "lift":
        raise SystemExit(f"{policy_dir}: failure modes are defined for lift, not {manifest['env'].get('task')}")
    steps: dict[int, list[dict]] = {}
    result = evaluate(env, policy, episodes, seed=seed, progress=True,
                      on_step=lambda i, e: steps.setdefault(i, []).append(lift_step_state(e)))
    rows = []
    for i, success in enumerate(result.successes):
        s = steps[i]
        grasped = [t for t, x in enumerate(s) if x["grasp"]]
        rows.append({"seed": result.seeds[i], "mode": failure_mode(s, success), "length": len(s),
                     "first_grasp_step": grasped[0] if grasped else None, "grasp_steps": len(grasped),
                     "max_height": round(max(x["height"] for x in s), 4),
                     "min_distance": round(min(x["distance"] for x in s), 4), "cube_xy": s[0]["cube_xy"]})
    modes = {m: sum(r["mode"] == m for r in rows)
             for m in ("success", "never reached", "reached, never grasped", "grasped, not lifted")}
    first_grasp = [r["first_grasp_step"] for r in rows if r["first_grasp_step"] is not None]
    return {"policy": policy_dir, "episodes": episodes, "seeds": [result.seeds[0], result.seeds[-1]],
            "modes": modes, "mean_first_grasp_step": float(np.mean(first_grasp)) if first_grasp else None,
            "per_episode": rows}


def readable_json(record: dict) -> str:
    """Indented, with each episode on one line (a few hundred lines instead of thousands)."""
    rows = {name: result["per_episode"] for name, result in record["policies"].items()}
    text = json.dumps({**record, "policies": {name: {**result, "per_episode": f"@{name}@"}
                                              for name, result in record["policies"].items()}}, indent=1)
    for name, episodes in rows.items():
        text = text.replace(json.dumps(f"@{name}@"), "[\n" + ",\n".join(json.dumps(e) for e in episodes) + "\n]")
    return text


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policy", action="append", required=True, help="policy directory (repeat to compare)")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=TUNING_SEED, help="`eval --seed` (default: the tuning seeds)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "failure_modes.json"))
    args = p.parse_args()
    if args.episodes < 1:
        p.error(f"--episodes: {args.episodes} must be a positive whole number")
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.is_file() else {"policies": {}}
    for policy in args.policy:
        result = analyse(policy, args.episodes, args.seed)
        record["policies"][policy] = result
        record["machine"] = f"{platform.processor() or platform.machine()}"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(readable_json(record))
        print(f"{policy}: {result['modes']} (mean first grasp at step {result['mean_first_grasp_step']})", flush=True)


if __name__ == "__main__":
    main()
