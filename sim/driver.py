"""A simulated robot driver: what a real arm's driver does (follow commands, hold position, move
joints for resets, report joint states, poses, wrench) over a sim/ environment, in its own process.

The ROS sim robot node talks to it through a pipe. A separate process keeps MuJoCo's physics and
offscreen rendering away from the node process's threads (rclpy executors, torch inference):
rendering holds the GIL, and an EGL context belongs to the thread that made it.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from typing import Any

import numpy as np

from robo_reward.envs.observations import ENV_STATE_KEY, IMAGE_PREFIX
from robo_reward.worker import ignore_stop_signals


class SimulatedDriver:
    def __init__(self, task: str, robot: str, cameras: list[str], image_size: int, seed: int = 0,
                 render: dict | None = None):
        from sim.robosuite_env import make_env

        self.env = make_env(task, robot, cameras=cameras, image_size=(image_size, image_size), horizon=10**9,
                            terminate_on_success=False, render=render)
        self.cameras = cameras
        self.scene_seed = seed
        # no command since the scene's reset: its seed still says what the scene is (the reset motion's
        # joint moves leave the objects where the reset put them)
        self.scene_untouched = True
        self.obs, _ = self.env.reset(seed=seed)
        self.last_action: np.ndarray | None = None
        self.commanded = False

    def apply(self, kind: str, payload: Any) -> None:
        """command: one control step; joints: go to a joint position (reset motion); reset_scene:
        new object placement; hold: keep the achieved pose (commands stopped)."""
        env = self.env
        if kind == "command":
            self.obs = env.step(np.asarray(payload, np.float32))[0]
            self.last_action, self.commanded = np.asarray(payload, np.float32), True
            self.scene_untouched = False
        elif kind == "joints":
            env.move_arm_joints(np.asarray(payload, float))
            self.obs = env.observation()
        elif kind == "reset_scene":
            self.scene_seed += 1
            self.obs, _ = env.reset(seed=self.scene_seed)
            self.last_action, self.commanded, self.scene_untouched = None, False, True
        elif kind == "hold":
            if self.commanded:
                env.hold_position()
                self.commanded = False
            self.obs = env.step(env.hold_action(self.last_action))[0]
        else:
            raise ValueError(f"unknown driver request {kind!r}")

    def snapshot(self) -> dict[str, Any]:
        return {**self.env.robot_readings(), "object_state": self.obs[ENV_STATE_KEY].astype(float),
                "success": self.env.check_success(),
                "scene_seed": self.scene_seed if self.scene_untouched else None,
                "images": {c: self.obs[f"{IMAGE_PREFIX}{c}"] for c in self.cameras}}


def _serve(conn, args: dict) -> None:
    ignore_stop_signals()  # the node stops the driver (hold, then close) when it stops
    # Mesa's software rasterizer (llvmpipe) has livelocked here with its worker threads spinning
    # under heavy CPU load; rendering these small frames in the calling thread avoids it
    os.environ.setdefault("LP_NUM_THREADS", "0")
    try:
        driver = SimulatedDriver(**args)
    except Exception as exc:  # noqa: BLE001 - robosuite/MuJoCo raise many types; the parent reports it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", driver.snapshot()))
    while True:
        try:
            kind, payload = conn.recv()
        except (EOFError, ConnectionResetError):  # the node is gone
            break
        if kind == "close":
            break
        try:
            driver.apply(kind, payload)
        except ValueError as exc:  # wrong size or NaN: refused, the state stays as it was
            conn.send(("refused", str(exc)))
            continue
        conn.send(("ok", driver.snapshot()))
    driver.env.close()


class DriverProcess:
    """The parent's handle: `request(kind, payload)` -> ("ok", snapshot) or ("refused", reason)."""

    def __init__(self, **args):
        self.args = args
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, args), name="sim-driver", daemon=True)
        self._process.start()
        if not self._conn.poll(300):
            self.kill()
            raise ValueError("the simulated robot did not start within 300 s")
        status, payload = self._conn.recv()
        if status != "ok":
            self._process.join()
            raise ValueError(f"cannot build the simulated robot: {payload}")
        self.first = payload

    def request(self, kind: str, payload: Any = None, timeout_s: float = 10.0) -> tuple[str, Any]:
        """Raises TimeoutError when the driver does not answer (MuJoCo's software renderer has been
        seen to hang under heavy CPU load here): the caller restarts it, as one restarts a driver."""
        self._conn.send((kind, payload))
        if not self._conn.poll(timeout_s):
            raise TimeoutError(f"simulated driver did not answer {kind!r} within {timeout_s} s")
        return self._conn.recv()

    def kill(self) -> None:
        self._process.kill()
        self._process.join()

    def close(self) -> None:
        if self._process.is_alive():
            try:
                self._conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.kill()
