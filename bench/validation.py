"""Validation benchmark: incoming activities validated per CPU-second (jsonschema-rs).

Two real shapes from tests/samples/: Mastodon's Create{Note} (a reply mentioning a
group, the inbox's most common heavy document) and Mastodon's Like (the most common
light one). For each, measured in the same run so ratios survive a noisy machine:

- ``json.loads`` of the body: the primitive every inbox request pays anyway;
- ``validate_incoming``: the public path (envelope, nesting limit, schema);
- the compiled jsonschema-rs validator's ``is_valid`` alone.

Prints figures; asserts nothing. One core, single thread; CPU time, not wall time.

    .venv/bin/python bench/validation.py [--seconds 1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import figures  # noqa: E402

from federation import validation  # noqa: E402

SAMPLES = {
    "Mastodon Create{Note}": ROOT
    / "tests"
    / "samples"
    / "mastodon"
    / "create_note_reply_mentioning_group.json",
    "Mastodon Like": ROOT / "tests" / "samples" / "mastodon" / "like_page.json",
}
BATCH = 200


def rate(work: Callable[[], object], seconds: float) -> float:
    """Calls of ``work`` per CPU-second, over at least ``seconds`` of CPU time."""
    for _ in range(BATCH):  # warm-up: caches, compiled validators
        work()
    calls = 0
    start = time.process_time()
    while (elapsed := time.process_time() - start) < seconds:
        for _ in range(BATCH):
            work()
        calls += BATCH
    return calls / elapsed


def measure(label: str, path: Path, seconds: float) -> None:
    raw = path.read_bytes()
    doc = json.loads(raw)
    kind = validation.validate_incoming(doc)  # also proves the sample is valid
    checker = validation._validator(f"activities/{kind.lower()}.json")

    parse = rate(lambda: json.loads(raw), seconds)
    full = rate(lambda: validation.validate_incoming(doc), seconds)
    bare = rate(lambda: checker.is_valid(doc), seconds)

    print(f"{label} ({len(raw)} bytes, {path.relative_to(ROOT)})")
    figures.record(f"schema validation, {label}", full, "/CPU-s")
    print(f"  json.loads                 {parse:>10,.0f} /CPU-s")
    print(f"  validate_incoming          {full:>10,.0f} /CPU-s  ({1e6 / full:.1f} µs each)")
    print(f"  jsonschema-rs is_valid     {bare:>10,.0f} /CPU-s  ({1e6 / bare:.1f} µs each)")
    print(f"  validate_incoming / json.loads  {full / parse:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="CPU seconds per measurement")
    args = parser.parse_args()
    if figures.smoke():
        args.seconds = 0.05

    start = time.process_time()
    names = validation.load_all()
    print(f"load_all: {len(names)} schemas compiled in {1000 * (time.process_time() - start):.0f} ms CPU")
    for label, path in SAMPLES.items():
        measure(label, path, args.seconds)


if __name__ == "__main__":
    main()
