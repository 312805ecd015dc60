"""`./dev bench`: every benchmark program under bench/, one table of figures.

Runs each program (every ``bench/*.py`` but the libraries below) ``--runs`` times in a
fresh process, gathers the figures each reports through bench/figures.py, and prints
one table: the machine's raw RSA rates first, then every figure with its median, its
spread over the runs (min–max), its target and ✓/✗ — side by side for figures measured
at several sizes (1×, 10×). Writes the same as JSON (``--json``, default
bench/results/latest.json) and keeps each run's own output under bench/results/.

``--smoke`` asks every program for its smallest run (CI runs it to keep the programs
working; no figure is judged then, and the command fails only if a program does).

    ./dev bench [--smoke] [--runs 3] [--only inbox,thread_page] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
LIBRARIES = {"dataset", "figures", "procs", "run", "scratch"}
FIRST = ["signatures"]  # the raw RSA rates every ratio is read against
MACHINE = "machine"


@dataclass
class Figure:
    name: str
    group: str
    unit: str
    target: float | None
    better: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def passes(self) -> bool | None:
        if self.target is None:
            return None
        return self.median >= self.target if self.better == "higher" else self.median <= self.target

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "group": self.group,
            "unit": self.unit,
            "target": self.target,
            "better": self.better,
            "values": self.values,
            "median": self.median,
            "min": min(self.values),
            "max": max(self.values),
            "pass": self.passes(),
        }


def programs(only: list[str] | None) -> list[str]:
    names = sorted(p.stem for p in BENCH.glob("*.py") if p.stem not in LIBRARIES)
    ordered = [n for n in FIRST if n in names] + [n for n in names if n not in FIRST]
    return [n for n in ordered if only is None or n in only]


def run_program(
    name: str, smoke: bool, logs: Path, run: int, timeout: float
) -> tuple[int, float, list[dict]]:
    """One run of ``bench/NAME.py``: its exit code, wall seconds and the figures it recorded."""
    with tempfile.NamedTemporaryFile(prefix=f"vbg-bench-{name}-", suffix=".jsonl", delete=False) as out:
        figures_path = Path(out.name)
    env = {**os.environ, "VBG_BENCH_JSON": str(figures_path)}
    if smoke:
        env["VBG_BENCH_SMOKE"] = "1"
    log = logs / f"{name}-{run}.log"
    started = time.perf_counter()
    with log.open("w") as output:
        try:
            code = subprocess.run(
                [sys.executable, str(BENCH / f"{name}.py")], env=env, stdout=output, stderr=subprocess.STDOUT,
                timeout=timeout, cwd=BENCH.parent,
            ).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = -1
            output.write(f"\n(stopped after {timeout:.0f} s)\n")
    seconds = time.perf_counter() - started
    lines = figures_path.read_text().splitlines()
    figures_path.unlink()
    return code, seconds, [json.loads(line) for line in lines]


def gather(found: dict[tuple[str, str], Figure], recorded: list[dict]) -> None:
    for f in recorded:
        key = (f["name"], f["group"])
        figure = found.setdefault(key, Figure(f["name"], f["group"], f["unit"], f["target"], f["better"]))
        figure.values.append(float(f["value"]))


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3g}"


def _cell(figure: Figure) -> str:
    spread = f"{_number(min(figure.values))}–{_number(max(figure.values))}" if len(figure.values) > 1 else ""
    return f"{_number(figure.median):>10} {spread:<17}"


def _verdict(figure: Figure, smoke: bool) -> str:
    if figure.target is None:
        return ""
    side = "≥" if figure.better == "higher" else "≤"
    mark = "" if smoke else ("✓" if figure.passes() else "✗")
    return f"{side} {figure.target:g} {mark}"


def table(found: dict[tuple[str, str], Figure], smoke: bool) -> str:
    groups = sorted(
        {g for (_, g) in found if g not in ("", MACHINE)}, key=lambda g: float(g.rstrip("×") or 0)
    )
    rows = [f"{'figure':<58}{'median':>10} {'spread (runs)':<17}{'unit':<15}target"]
    machine = [f for (_, g), f in found.items() if g == MACHINE]
    plain = [f for (_, g), f in found.items() if g == ""]
    for figure in machine + plain:
        rows.append(f"{figure.name:<58}{_cell(figure)}{figure.unit:<15}{_verdict(figure, smoke)}")
    if groups:
        rows.append("")
        rows.append(
            f"{'at each size of the data set':<58}" + "".join(f"{g:>28}" for g in groups) + "   target"
        )
        for name in dict.fromkeys(n for (n, g) in found if g in groups):
            cells = "".join(_cell(found[(name, g)]) if (name, g) in found else f"{'—':>28}" for g in groups)
            last = next(found[(name, g)] for g in reversed(groups) if (name, g) in found)
            rows.append(f"{name:<58}{cells} {last.unit} {_verdict(last, smoke)}")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="smallest run of each program (CI)")
    parser.add_argument("--runs", type=int, help="runs per program (default 3, 1 with --smoke)")
    parser.add_argument("--only", help="comma-separated program names (e.g. inbox,thread_page)")
    parser.add_argument(
        "--json", type=Path, help="where to write the figures (default bench/results/latest.json)"
    )
    args = parser.parse_args()
    runs = args.runs or (1 if args.smoke else 3)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    logs = BENCH / "results" / stamp
    logs.mkdir(parents=True, exist_ok=True)
    found: dict[tuple[str, str], Figure] = {}
    status: dict[str, dict[str, Any]] = {}
    for name in programs(args.only.split(",") if args.only else None):
        for run in range(1, runs + 1):
            code, seconds, recorded = run_program(name, args.smoke, logs, run, 300 if args.smoke else 3600)
            print(
                f"bench/{name}.py run {run}/{runs}: exit {code}, {seconds:.0f} s, {len(recorded)} figures",
                flush=True,
            )
            status.setdefault(name, {"exits": [], "seconds": []})
            status[name]["exits"].append(code)
            status[name]["seconds"].append(round(seconds, 1))
            gather(found, recorded)
    print()
    print(f"{platform.node()} · {os.cpu_count()} cores · Python {platform.python_version()} · {stamp}"
          f"{' · smoke run: sizes too small to judge' if args.smoke else ''}")  # fmt: skip
    print(table(found, args.smoke))
    failed = [name for name, s in status.items() if any(code != 0 for code in s["exits"])]
    report = {
        "when": stamp,
        "machine": {"host": platform.node(), "cores": os.cpu_count(), "python": platform.python_version()},
        "smoke": args.smoke,
        "runs": runs,
        "programs": status,
        "figures": [f.to_json() for f in found.values()],
    }
    path = args.json or BENCH / "results" / "latest.json"
    path.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nfigures written to {path}; each run's output under {logs}")
    if failed:
        print(f"programs that failed: {', '.join(failed)} (see their logs)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
