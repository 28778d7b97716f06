"""The end-of-run summary's closed-model bound and the open model's split between workers.

Importing Locust monkey-patches the standard library with gevent, which must not happen
inside the test process: each check runs in a small Python process of its own.
"""

from __future__ import annotations

import json

from tests.load.probe import run_probe

SUMMARY_PROBE = """
import json, sys
from dataclasses import asdict
from types import SimpleNamespace
from lab_run import LabRun

request = json.loads(sys.argv[1])
options = SimpleNamespace(
    run_id="probe", config_label="r1-test", shape=request["shape"], think_time=1.0,
    arrival_rate=request.get("arrival_rate", 0.0), arrival_rates="", step_seconds=15,
    check_fail_ratio=None, check_rps=None, check_p95=None, num_users=request["users"],
)
# Locust's totals of a steady closed run: by Little's law its RPS is
# users / (think time + latency).
total = SimpleNamespace(
    num_requests=1000, num_failures=0, fail_ratio=0.0, start_time=0.0,
    last_request_timestamp=30.0, total_rps=request["rps"],
    avg_response_time=request["latency_ms"],
)
runner = SimpleNamespace(stats=SimpleNamespace(total=total), user_count=request["users"])
run = LabRun(SimpleNamespace(runner=runner, parsed_options=options, host="http://x"))
run.users_max = request["users"]
summary = run.summarize()
print(json.dumps({
    "ceiling": summary.closed_model_ceiling_rps,
    "flags": [flag.kind.value for flag in summary.flags],
}))
"""


def summarize(**request: object) -> dict:
    return run_probe(SUMMARY_PROBE, json.dumps(request))


def test_closed_model_ceiling_is_users_over_think_time_not_littles_law() -> None:
    # 60 users, 1 s think time, answers in 500 ms: Little's law gives 40 RPS for any
    # steady run, so users / (think time + latency) would flag this run as user-bound.
    steady = summarize(shape="ramp", users=60, rps=40.0, latency_ms=500.0)

    assert steady["ceiling"] == 60.0
    assert "closed-model-bound" not in steady["flags"]


def test_closed_model_run_near_its_users_bound_is_flagged() -> None:
    # Answers in 10 ms: the users, not the service, set the pace.
    fast = summarize(shape="ramp", users=60, rps=59.0, latency_ms=10.0)

    assert fast["ceiling"] == 60.0
    assert "closed-model-bound" in fast["flags"]


def test_open_model_has_no_closed_model_ceiling() -> None:
    run = summarize(shape="open", users=60, rps=59.0, latency_ms=10.0, arrival_rate=60.0)

    assert run["ceiling"] is None
    assert "closed-model-bound" not in run["flags"]


SHARE_PROBE = """
import json, sys, time
from types import SimpleNamespace
from lab_arrivals import ArrivalClock

request = json.loads(sys.argv[1])
options = SimpleNamespace(num_users=request["conf_users"], arrival_rate=0.0, arrival_rates="")
if request["master_users"] is not None:
    options.lab_users_total = request["master_users"]
runner = SimpleNamespace(target_user_count=request["mine"])
clock = ArrivalClock(SimpleNamespace(runner=runner, parsed_options=options), time.time())
clock.stop()
print(json.dumps(clock._share()))
"""


def share(conf_users: int, master_users: int | None, mine: int) -> float:
    return run_probe(SHARE_PROBE, json.dumps(locals()))


def test_worker_offers_its_users_share_of_the_masters_users() -> None:
    # A worker on another host reads users = 50 from its own locust.conf; the master runs
    # 10 users, 5 of them on this worker.
    assert share(conf_users=50, master_users=10, mine=5) == 0.5
    assert share(conf_users=10, master_users=None, mine=10) == 1.0


def test_worker_offers_nothing_before_it_has_users() -> None:
    assert share(conf_users=10, master_users=10, mine=0) == 0.0
