"""The pusher against a Pushgateway that does not answer: counted, logged once, backed off.

Importing Locust monkey-patches the standard library with gevent, which must not happen
inside the test process: the pusher runs in a small Python process of its own.
"""

from __future__ import annotations

from tests.load.probe import run_probe
from tests.support import free_port

PROBE = """
import json, logging, sys
from lab_prometheus import Pusher, RunMetrics

records = []
handler = logging.Handler()
handler.emit = lambda record: records.append((record.levelname, record.getMessage()))
logging.getLogger("lab.prometheus").addHandler(handler)
logging.getLogger("lab.prometheus").setLevel(logging.INFO)

metrics = RunMetrics("r1-test")
pusher = Pusher(metrics, sys.argv[1], "probe", "h-master", 2.0, 5.0, 0.0)
delays = [pusher.next_delay()]
for _ in range(6):
    pusher.push()
    delays.append(pusher.next_delay())
registry = metrics.registry
print(json.dumps({
    "delays": delays,
    "failures": registry.get_sample_value("locust_push_failures_total", {"config": "r1-test"}),
    "ttl": registry.get_sample_value("locust_push_ttl_seconds"),
    "identity": [
        s.labels for m in registry.collect() if m.name == "locust_pusher_info" for s in m.samples
    ],
    "records": records,
}))
"""


def probe_pusher() -> dict:
    # Nothing listens on a port just handed out and released.
    return run_probe(PROBE, f"http://127.0.0.1:{free_port()}")


def test_failed_pushes_are_counted_warned_once_and_retried_with_bounded_backoff() -> None:
    probe = probe_pusher()

    # One interval while pushes work, then doubling, capped at four intervals.
    assert probe["delays"] == [2.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    assert probe["failures"] == 6
    warnings = [message for level, message in probe["records"] if level == "WARNING"]
    assert len(warnings) == 1
    assert "cannot push to the Pushgateway" in warnings[0]
    assert "the test goes on" in warnings[0]


def test_pushed_registry_carries_its_time_to_live_and_its_process() -> None:
    probe = probe_pusher()

    # Three missed pushes (3 x 2 s), the linger after the final push (5 s), one timeout (3 s).
    assert probe["ttl"] == 14.0
    assert len(probe["identity"]) == 1
    assert set(probe["identity"][0]) == {"boot_id", "pid_namespace", "pid", "start_time"}
