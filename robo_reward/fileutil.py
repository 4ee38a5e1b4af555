"""Output directories that appear only when complete: nothing half-written after an error."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robo_reward.errors import RoboRewardError


def write_json(path: Path, data: Any) -> None:
    """Indented JSON; numpy scalars become numbers, anything else unknown its str()."""
    path.write_text(json.dumps(data, indent=2, default=lambda o: o.item() if hasattr(o, "item") else str(o)))


def check_output_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise RoboRewardError(f"output {out} already exists; pass --overwrite to replace it")


def refuse_output_inside_inputs(out: Path, inputs: list[Path]) -> None:
    """--overwrite must never delete what the command reads."""
    target = Path(out).resolve()
    for source in inputs:
        source = Path(source).resolve()
        if target == source or target in source.parents:
            raise RoboRewardError(f"output {out} would overwrite the input {source}; choose another --out")


@contextmanager
def staged_dir(out: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `out`; on success it replaces `out`, on error it is deleted."""
    out = Path(out)
    check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
