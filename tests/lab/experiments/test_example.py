"""The committed examples (experiments/example/, the 10,000-user run in
experiments/example-10k/ and the verified prediction in experiments/example-capacity/)
are rebuilt from their stored data, offline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from lab.experiments import consistency
from lab.experiments.measure import ARRIVALS_LARGEST, WindowReader
from lab.experiments.raw import HOST_CPU, RAW_DIR, ReplayPrometheus, busy_share
from lab.experiments.report import write_report
from lab.experiments.results import load
from tests.support import REPO

EXAMPLES = [REPO / "experiments" / name for name in ("example", "example-10k", "example-capacity")]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_report_is_rebuilt_byte_for_byte(example: Path, tmp_path: Path) -> None:
    copy = tmp_path / "example"
    shutil.copytree(example, copy)

    write_report(load(copy), copy)

    assert (copy / "report.md").read_bytes() == (example / "report.md").read_bytes()


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_window_of_the_example_is_measured_again_from_its_raw_series(
    example: Path,
) -> None:
    results = load(example)
    machine = results.machine
    reader = WindowReader(
        ReplayPrometheus(example),
        machine["scrape_interval_s"],
        machine["push_interval_s"],
        machine.get("arrivals", ARRIVALS_LARGEST),
    )
    host = json.loads((example / RAW_DIR / HOST_CPU).read_text())
    samples = [tuple(s) for s in host["samples"]]
    # The engine lever's windows too: its deployment measured again with the other engine.
    measured = [*results.configs, *([results.engine_lever] if results.engine_lever else [])]
    windows = [m for c in measured for s in c.steps for m in s.windows]

    assert windows
    for m in windows:
        again = reader.measure(m.config, m.run_id, m.start, m.end)
        again.host_busy = busy_share(samples, m.start, m.end)  # type: ignore[arg-type]
        assert again == m, (m.config, m.run_id, m.start)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_the_example_agrees_with_itself(example: Path) -> None:
    failed = [c.what for c in consistency.checks(load(example)) if not c.holds]

    assert failed == []
