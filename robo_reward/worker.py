"""Helper processes (a simulated robot's driver, a dataset writer) belong to the process that
started them: that process decides when and how they stop."""

from __future__ import annotations

import signal


def ignore_stop_signals() -> None:
    """Ctrl-C in a terminal (or `kill -INT -PGID`) reaches every process of the group. A helper that
    died of it mid-write would lose the last episode and print a KeyboardInterrupt traceback; its
    owner instead finishes its work and closes it in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
