"""Figures a benchmark program reports, for `./dev bench` (bench/run.py) to gather.

Each program prints its figures for a person, as before, and also calls
:func:`record` for each one that has a target or that the table shows. When the
runner sets ``VBG_BENCH_JSON`` to a file, every figure is appended to it as a JSON
line; otherwise :func:`record` does nothing. ``VBG_BENCH_SMOKE=1`` asks a program
for its smallest run (a few seconds: CI runs it only to keep the programs working,
with no thresholds); :func:`smoke` tells a program whether that is asked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal

Better = Literal["higher", "lower"]


def smoke() -> bool:
    return os.environ.get("VBG_BENCH_SMOKE") == "1"


def record(
    name: str,
    value: float,
    unit: str,
    *,
    target: float | None = None,
    better: Better = "higher",
    group: str = "",
) -> None:
    """One figure: ``target`` is the bar (None: shown, not judged); ``better`` says
    which side of it passes. ``group`` names a column (e.g. "1×", "10×")."""
    path = os.environ.get("VBG_BENCH_JSON")
    if not path:
        return
    line = {"name": name, "value": value, "unit": unit, "target": target, "better": better, "group": group}
    with Path(path).open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
