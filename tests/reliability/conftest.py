"""The reliability suite's shared pieces: the scale it runs at, and the scenario table it prints.

`make test` runs every scenario at a short scale so the suite stays fast; `make chaos` sets `CMSRAG_CHAOS=full`
and runs the same scenarios at the sizes the issue names (and `make soak` longer still, `CMSRAG_CHAOS=soak`).
Each scenario records its figures with the `scenario` fixture; at the end pytest prints one table of
scenario → pass/fail → figures (and writes it as JSON to `CMSRAG_CHAOS_REPORT` when that is set).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

SCALE = os.environ.get("CMSRAG_CHAOS", "short").lower()
if SCALE not in ("short", "full", "soak"):
    raise pytest.UsageError(f"CMSRAG_CHAOS must be short, full or soak, not {SCALE!r}")


def scaled(short: Any, full: Any, soak: Any | None = None) -> Any:
    """The value for the running scale: `short` under `make test`, `full` under `make chaos`, `soak` (or
    `full`) under `make soak`."""
    if SCALE == "soak":
        return full if soak is None else soak
    return full if SCALE == "full" else short


@dataclass
class ScenarioRecord:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    outcome: str = "not run"

    def __call__(self, **figures: Any) -> None:
        """Record figures (counts, latencies) shown beside the scenario's pass/fail."""
        self.figures.update(figures)


RECORDS: dict[str, ScenarioRecord] = {}


@pytest.fixture
def scenario(request: pytest.FixtureRequest) -> Iterator[Callable[..., None]]:
    """`scenario(lost=0, indexed=100)`: figures for the table. The scenario's name is its test's docstring's
    first line, or the test name."""
    doc = (request.function.__doc__ or "").strip().splitlines()
    record = ScenarioRecord(doc[0] if doc else request.node.name)
    RECORDS[request.node.nodeid] = record
    yield record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    record = RECORDS.get(item.nodeid)
    if record is None:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        if hasattr(report, "wasxfail"):  # a known finding, marked strict: it fails the run once fixed
            record.outcome = "xfail" if report.skipped else "XPASS"
        else:
            record.outcome = "skipped" if report.skipped else ("pass" if report.passed else "FAIL")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not RECORDS:
        return
    tr = terminalreporter
    tr.section(f"reliability scenarios (scale: {SCALE})")
    width = max(len(r.name) for r in RECORDS.values())
    for record in RECORDS.values():
        figures = ", ".join(f"{k}={v}" for k, v in record.figures.items())
        tr.write_line(f"{record.name:<{width}}  {record.outcome:<7}  {figures}")
    path = os.environ.get("CMSRAG_CHAOS_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"scale": SCALE, "scenarios": [vars(r) for r in RECORDS.values()]}, fh, indent=2)
