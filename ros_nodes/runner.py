"""Running nodes: one per process (what `ros2 run robo_reward <executable>` and the launch files
start), or a whole node set in one process on one executor (`robo-reward ros up`, as ROS 2
composition does — the launch system itself is not installable here).

A node that cannot start (bad config, missing model) ends with one clear line and exit status 2.
SIGINT/SIGTERM stop the executor and destroy every node, so learners checkpoint and recorders
save the episode in progress.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from robo_reward.errors import RoboRewardError
from ros_nodes.graph import EXECUTABLES, NodeSpec

FASTDDS_PROFILE = Path(__file__).with_name("fastdds_profile.xml")
STOP_REPORT_S = 8.0  # stopping longer than this prints every thread's stack (stderr)


def drop_inherited_realtime() -> None:
    """Node processes run at normal priority unless asked (ROBO_REWARD_KEEP_REALTIME=1): one started
    from a thread that a video encoder left at SCHED_FIFO 99 would otherwise inherit it, and rclpy's
    executor spinning at real-time priority starves everything else on the machine."""
    if os.sched_getscheduler(0) in (os.SCHED_FIFO, os.SCHED_RR) and not os.environ.get("ROBO_REWARD_KEEP_REALTIME"):
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def use_shipped_dds_profile() -> None:
    """Large images need a bigger Fast DDS shared-memory segment than the default; a profile the
    user already set wins."""
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(FASTDDS_PROFILE))


def node_class(executable: str) -> type:
    module, _, name = EXECUTABLES[executable].partition(":")
    return getattr(importlib.import_module(module), name)


def _spin(nodes: list, duration_s: float | None) -> None:
    """executor.spin() in a worker thread (spin_once loops on a MultiThreadedExecutor have hung
    here); the main thread only waits for SIGINT/SIGTERM or the duration, then stops everything."""
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack: for hangs
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    executor = MultiThreadedExecutor(num_threads=max(4, len(nodes) + 2))
    for node in nodes:
        executor.add_node(node)

    def spin() -> None:
        try:
            executor.spin()
        except Exception:  # rclpy's shutdown can pull a guard condition from under a spin in progress
            if not stop.is_set():
                raise

    spinner = threading.Thread(target=spin, name="executor", daemon=True)
    spinner.start()
    try:
        stop.wait(timeout=duration_s)
    finally:
        stop.set()
        began = time.monotonic()
        # a stop that hangs shows where, before `ros2 launch` escalates to SIGKILL (SIGTERM at 5 s, SIGKILL at 10 s)
        faulthandler.dump_traceback_later(STOP_REPORT_S)
        executor.shutdown(timeout_sec=5.0)
        spinner.join(timeout=5.0)
        timings = [("executor", time.monotonic() - began)]
        for node in reversed(nodes):
            name, started = node.get_name(), time.monotonic()
            try:
                node.destroy_node()
            except Exception as exc:  # noqa: BLE001 - one node's cleanup must not skip the others'
                print(f"[robo_reward] {name}: error while stopping: {exc}", file=sys.stderr)
            timings.append((name, time.monotonic() - started))
        rclpy.try_shutdown()
        faulthandler.cancel_dump_traceback_later()
        print(f"[robo_reward] stopped in {time.monotonic() - began:.1f} s (" +
              ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings) + ")", file=sys.stderr, flush=True)


def build(specs: Sequence[NodeSpec]) -> list:
    nodes = []
    try:
        for spec in specs:
            params = [Parameter(k, value=v) for k, v in spec.parameters.items()]
            try:
                nodes.append(node_class(spec.executable)(node_name=spec.name, parameter_overrides=params))
            except (RoboRewardError, ValueError, OSError) as exc:
                raise RoboRewardError(f"node {spec.name} cannot start: {exc}") from exc
    except BaseException:
        for node in nodes:
            node.destroy_node()
        raise
    return nodes


def exit_now(code: int) -> None:
    """End the process once every node has stopped (checkpoints written, recordings finalized): the
    interpreter's own teardown garbage-collects torch and rclpy objects for seconds, which would make
    Ctrl-C look like a hang."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def interruptible_start() -> None:
    """SIGINT raises KeyboardInterrupt while the nodes start, also in a process that inherited it
    ignored (Python then keeps it ignored: a job a non-interactive shell started in the background), so
    a stop sent during a slow start (a model loading) is not lost; `_spin` takes over once they run."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def run_stack(specs: Sequence[NodeSpec], duration_s: float | None = None) -> int:
    interruptible_start()
    drop_inherited_realtime()
    use_shipped_dds_profile()
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    try:
        nodes = build(specs)
    except RoboRewardError as exc:
        # no rclpy shutdown: it would call the half-built node's destroy_node (the caller exits now)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"[robo_reward] running {len(nodes)} nodes: {', '.join(n.get_name() for n in nodes)}", flush=True)
    _spin(nodes, duration_s)
    return 0


def run_single(cls: type, args=None) -> None:
    interruptible_start()
    drop_inherited_realtime()
    use_shipped_dds_profile()
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = cls()
    except (RoboRewardError, ValueError, OSError) as exc:
        # no rclpy shutdown: it would call the half-built node's destroy_node
        print(f"error: {exc}", file=sys.stderr)
        exit_now(2)
    except KeyboardInterrupt:  # stopped while starting (ros2 launch shut down early): nothing to save yet
        print(f"{cls.__name__}: stopped while starting", file=sys.stderr)
        exit_now(0)
    _spin([node], None)
    exit_now(0)


class BackgroundNode:
    """A node with its own context on ROS domain `domain`, spun in a daemon thread: for tools, tests
    and benchmarks that watch or poke a running stack from ordinary Python code."""

    def __init__(self, name: str, domain: int, spin_period_s: float = 0.02):
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._period, self._spinning = spin_period_s, True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self._spinning:
            self.executor.spin_once(timeout_sec=self._period)

    def close(self) -> None:
        self._spinning = False
        self._thread.join()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def ros_up_process(config: str | Path, args: Sequence[str], domain: int, log: Path) -> subprocess.Popen:
    """`robo-reward ros up CONFIG ARGS...` in its own process on ROS domain `domain`, with the shipped
    Fast DDS profile; stdout and stderr go to `log`."""
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
           "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:  # its own process group, like a terminal's job: Ctrl-C reaches all of it
        return subprocess.Popen([sys.executable, "-m", "robo_reward.cli", "ros", "up", str(config), *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def interrupt_and_wait(proc: subprocess.Popen, timeout_s: float) -> float:
    """Ctrl-C to the process's whole group, as a terminal sends it; returns the seconds until it exited
    (the group is killed and TimeoutExpired raised past `timeout_s`)."""
    start = time.monotonic()
    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:  # it has already ended
        pass
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return time.monotonic() - start
