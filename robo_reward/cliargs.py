"""Argument types and the parser class of every robo-reward command: a count, size or rate that
cannot be right (0, negative, not a number) and a file a read-only command cannot find are refused
before anything runs or is written, in one line with exit status 2."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from pathlib import Path


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (`robo-reward demos collect: error: ...`), exit 2."""

    def error(self, message: str):  # type: ignore[override]
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def _checked(kind: type, what: str, ok: Callable[[float], bool], problem: str) -> Callable[[str], float]:
    """An argparse type: `text` parsed as `kind` ("not {what}" otherwise) and refused unless ok(value)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{value} {problem}")
        return value
    return parse


positive_int = _checked(int, "a whole number", lambda v: v > 0, "must be a positive whole number")
non_negative_int = _checked(int, "a whole number", lambda v: v >= 0, "must be 0 or more")
positive_float = _checked(float, "a number", lambda v: 0 < v < math.inf, "must be a positive finite number")
non_negative_float = _checked(float, "a number", lambda v: 0 <= v < math.inf, "must be 0 or more (and finite)")
open_fraction = _checked(float, "a number", lambda v: 0 < v < 1, "must be between 0 and 1 (exclusive)")
# recorded camera videos: lerobot's AV1 encoder crashes the process (SIGFPE) on frames below ~25 px
MIN_VIDEO_SIZE = 32
video_size = _checked(int, "a whole number", lambda v: v >= MIN_VIDEO_SIZE,
                      f"is too small: recorded frames must be at least {MIN_VIDEO_SIZE} pixels")
port_number = _checked(int, "a port number", lambda v: 0 < v < 65536, "is not a TCP port (1-65535)")


def render_arg(text: str):
    """--render: a preset name with optional key=value overrides (robo_reward.envs.rendering)."""
    from robo_reward.envs.rendering import parse_render

    try:
        return parse_render(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--render: ")) from None


def existing_file(text: str) -> str:
    """An input a read-only command reads: it must exist (a typo must not read as an empty input)."""
    if not Path(text).is_file():
        raise argparse.ArgumentTypeError(f"{text} does not exist" if not Path(text).exists() else f"{text} is not a file")
    return text
