"""The lab's Locust scenario: penguin predictions against the API behind Traefik.

    locust -f locust/locustfile.py --config locust/locust.conf        # web UI on :8089
    locust -f locust/locustfile.py --config locust/locust.conf --headless -u 50 -r 10 -t 60s

Options (see `--help`, group "capacity lab"): run id and config labels, load shape,
think time or arrival rate, invalid-payload share, Pushgateway, SLO checks.
"""

from __future__ import annotations

import os
from typing import Any

# locust_plugins adds --check-fail-ratio, --check-rps and sets the exit code on failure.
import locust_plugins  # noqa: F401
from lab_options import SHAPES
from lab_run import LabRun
from lab_shapes import SHAPE_CLASSES
from lab_users import PenguinUser
from locust.env import Environment

from locust import events, run_single_user

__all__ = ["PenguinUser"]

_SHAPE = os.environ.get("LOCUST_SHAPE", "ramp")
if _SHAPE not in SHAPES:
    raise SystemExit(f"LOCUST_SHAPE={_SHAPE!r} is not one of {', '.join(SHAPES)}")
# Locust uses the shape class it finds in this module; ramp and open need none.
if _SHAPE in SHAPE_CLASSES:
    LabShape = SHAPE_CLASSES[_SHAPE]

_runs: dict[int, LabRun] = {}


@events.init.add_listener
def on_init(environment: Environment, **_: Any) -> None:
    run = _runs[id(environment)] = LabRun(environment)
    # A generator killed or crashed earlier left its group behind: no dead run is scraped.
    run.remove_dead_runs()
    environment.events.test_start.add_listener(lambda **_: run.test_start())
    environment.events.test_stop.add_listener(lambda **_: run.test_stop())
    environment.events.quitting.add_listener(lambda **_: run.quitting())
    environment.events.report_to_master.add_listener(lambda data, **_: run.report_to_master(data))
    environment.events.worker_report.add_listener(lambda data, **_: run.worker_report(data))

    def on_request(
        request_type: str, name: str, response_time: float, exception: Any, **_: Any
    ) -> None:
        run.request(request_type, name, response_time, exception)

    environment.events.request.add_listener(on_request)


if __name__ == "__main__":
    run_single_user(PenguinUser)
