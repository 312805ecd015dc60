"""./dev bench gathers what each benchmark program records into one table (bench/run.py)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Protocol

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_figures_are_recorded_only_when_the_runner_asks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    figures = load("figures")
    monkeypatch.delenv("VBG_BENCH_JSON", raising=False)
    figures.record("ignored", 1.0, "ms")
    out = tmp_path / "figures.jsonl"
    monkeypatch.setenv("VBG_BENCH_JSON", str(out))
    figures.record("search, p99", 12.5, "ms", target=50, better="lower", group="10×")
    assert json.loads(out.read_text()) == {
        "name": "search, p99", "value": 12.5, "unit": "ms", "target": 50, "better": "lower", "group": "10×",
    }  # fmt: skip


class Figure(Protocol):
    """What the test reads of bench/run.py's ``Figure`` (the module is loaded from its
    file: bench/ is not a package)."""

    @property
    def median(self) -> float: ...
    def passes(self) -> bool | None: ...


def test_the_table_judges_medians_and_puts_sizes_side_by_side() -> None:
    run = load("run")
    found: dict[tuple[str, str], Figure] = {}
    for value in (900.0, 700.0, 1000.0):
        run.gather(found, [{"name": "pages", "value": value, "unit": "/CPU-s", "target": 800, "better": "higher",
                            "group": ""}])  # fmt: skip
    run.gather(found, [
        {"name": "rate", "value": 48000, "unit": "/s", "target": None, "better": "higher", "group": "machine"},
        {"name": "search, p99", "value": 20, "unit": "ms", "target": 50, "better": "lower", "group": "1×"},
        {"name": "search, p99", "value": 60, "unit": "ms", "target": 50, "better": "lower", "group": "10×"},
    ])  # fmt: skip
    pages = found[("pages", "")]
    assert pages.median == 900.0 and pages.passes() is True
    assert found[("search, p99", "10×")].passes() is False
    lines = run.table(found, smoke=False).splitlines()
    assert lines[1].startswith("rate")  # the machine's rates come first
    assert "900" in lines[2] and "700.0–1,000" in lines[2] and lines[2].endswith("≥ 800 ✓")
    sizes = next(line for line in lines if line.startswith("search, p99"))
    assert sizes.index("20.0") < sizes.index("60.0") and sizes.endswith("≤ 50 ✗")
    assert "✓" not in run.table(found, smoke=True) and "✗" not in run.table(found, smoke=True)


def test_every_program_is_run_signatures_first() -> None:
    names = load("run").programs(None)
    assert names[0] == "signatures"
    assert {"thread_page", "inbox", "delivery", "scale"} <= set(names)
    assert not {"dataset", "figures", "procs", "run"} & set(names)
