"""The steps and spike shapes and the open-model schedule, evaluated with a fake clock.

Importing Locust monkey-patches the standard library with gevent, which must not happen
inside the test process: each check runs in a small Python process of its own.
"""

from __future__ import annotations

import json

import pytest

from tests.load.probe import run_probe

PROBE = """
import json, sys
from types import SimpleNamespace
from lab_options import arrival_rate_at
from lab_shapes import SpikeShape, StepsShape

request = json.loads(sys.argv[1])
if request["kind"] == "rate":
    options = SimpleNamespace(**request["options"])
    print(json.dumps([arrival_rate_at(options, t) for t in request["times"]]))
else:
    shape = {"steps": StepsShape, "spike": SpikeShape}[request["kind"]]()
    options = SimpleNamespace(run_time=100, num_users=50, spawn_rate=10, steps=5, spike_factor=3.0)
    shape.runner = SimpleNamespace(environment=SimpleNamespace(parsed_options=options))
    ticks = []
    for moment in request["times"]:
        shape.get_run_time = lambda moment=moment: moment
        ticks.append(shape.tick())
    print(json.dumps(ticks))
"""


def probe(kind: str, times: list[float], **options: object) -> list[object]:
    return run_probe(PROBE, json.dumps({"kind": kind, "times": times, "options": options}))


def test_steps_rise_in_equal_held_steps_and_stop_at_the_end() -> None:
    assert probe("steps", [0, 19.9, 20, 59, 99.9, 100]) == [
        [10, 10],
        [10, 10],
        [20, 10],
        [30, 10],
        [50, 10],
        None,
    ]


def test_spike_multiplies_users_in_the_middle_fifth() -> None:
    ticks = probe("spike", [10, 39.9, 40, 59.9, 60, 99])

    assert [tick[0] for tick in ticks] == [50, 50, 150, 150, 50, 50]
    assert ticks[2][1] >= 150


@pytest.mark.parametrize(
    ("rates", "rate", "expected"),
    [("20,40,60", 0, [20, 20, 40, 60]), ("", 35, [35, 35, 35, 35]), ("", 0, [0, 0, 0, 0])],
)
def test_open_model_schedule(rates: str, rate: float, expected: list[float]) -> None:
    got = probe("rate", [0, 14.9, 15, 500], arrival_rates=rates, arrival_rate=rate, step_seconds=15)

    assert got == expected
