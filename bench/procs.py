"""Process CPU and latency helpers shared by the benchmarks."""

from __future__ import annotations

from pathlib import Path

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """A process and all its descendants."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_of(procs: list[psutil.Process]) -> float:
    """User + system CPU seconds of ``procs`` (those that have exited count 0)."""
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def postmaster_pid(pgdata: Path) -> int:
    """The PostgreSQL postmaster of ``pgdata`` (first line of postmaster.pid)."""
    return int((pgdata / "postmaster.pid").read_text().split()[0])


def pct(values: list[float], p: float) -> float:
    """The ``p`` percentile (0–1) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]
