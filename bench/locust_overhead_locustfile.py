"""Locust scenario for measuring the lab listener's cost: one request per task, no wait.

With LAB_LISTENER=1 every request is also recorded by the lab's listener (the Prometheus
metrics and the SLO tally the real locustfile uses); pushing happens every few seconds
and is left out.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "locust"))

from lab_prometheus import RunMetrics
from lab_tally import LatencyTally

BODY = (
    b'{"island":"Torgersen","bill_length_mm":39.1,"bill_depth_mm":18.7,'
    b'"flipper_length_mm":181,"body_mass_g":3750,"sex":"male"}'
)

if os.environ.get("LAB_LISTENER") == "1":
    metrics = RunMetrics("bench")
    tally = LatencyTally()

    @events.request.add_listener
    def record(
        request_type: str, name: str, response_time: float, exception: Any, **_: Any
    ) -> None:
        seconds = response_time / 1000.0
        metrics.record(request_type, name, seconds, exception)
        tally.add(seconds, exception is None)


class Client(FastHttpUser):
    wait_time = constant(0)

    @task
    def predict(self) -> None:
        self.client.post(
            "/predict",
            data=BODY,
            headers={"content-type": "application/json"},
            name="POST /predict",
        )
