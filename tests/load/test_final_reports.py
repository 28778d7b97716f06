"""The handshake that brings every worker's last stats to the master before it stops
listening (locust/lab_final_reports.py), with runners whose messages are recorded.

Importing Locust patches the standard library with gevent: each check runs in a small
Python process of its own (tests/load/probe.py).
"""

from __future__ import annotations

import json

from tests.load.probe import run_probe

MASTER_PROBE = """
import json, logging, sys, time
import gevent
from types import SimpleNamespace
from locust.rpc import Message
from locust.runners import STATE_MISSING, STATE_RUNNING, MasterRunner, WorkerNode, WorkerNodes
from lab_final_reports import FINISH, FINISHED, FinalReports

request = json.loads(sys.argv[1])
warnings = []
logging.getLogger("lab.final_reports").addHandler(
    type("H", (logging.Handler,), {"emit": lambda self, r: warnings.append(r.getMessage())})()
)


class Master(MasterRunner):
    def __init__(self):
        self.custom_messages = {}
        self.sent = []
        self.clients = WorkerNodes()
        for name in request["running"]:
            self.clients[name] = WorkerNode(name, STATE_RUNNING)
        for name in request["missing"]:
            self.clients[name] = WorkerNode(name, STATE_MISSING)

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append([msg_type, client_id])
        if msg_type == FINISH and client_id in request["answering"]:
            gevent.spawn(self.answer, client_id)

    def answer(self, client_id):
        # 50 ms later, by the clock: gevent's timers start from the loop's cached time.
        due = time.monotonic() + 0.05
        while time.monotonic() < due:
            gevent.sleep(0.01)
        listener, _ = self.custom_messages[FINISHED]
        listener(environment=None, msg=Message(FINISHED, None, client_id))


runner = Master()
reports = FinalReports(SimpleNamespace(runner=runner), timeout=request["timeout"])
began = time.monotonic()
reports.collect()
print(json.dumps({
    "sent": runner.sent, "waited": time.monotonic() - began, "warnings": warnings,
}))
"""

WORKER_PROBE = """
import json, sys
from types import SimpleNamespace
from locust.event import Events
from locust.runners import STATE_RUNNING, STATE_STOPPED, WorkerRunner
from lab_final_reports import FINISH, FinalReports

request = json.loads(sys.argv[1])


class Worker(WorkerRunner):
    def __init__(self, state):
        self.custom_messages = {}
        self.client_id = "w1"
        self.state = state
        self.sent = []
        self.stopped = 0

    def send_message(self, msg_type, data=None, client_id=None):
        self.sent.append([msg_type, data])

    def stop(self):
        self.stopped += 1


events = Events()
events.report_to_master.add_listener(lambda client_id, data: data.update(requests=7))
runner = Worker(STATE_STOPPED if request["stopped"] else STATE_RUNNING)
environment = SimpleNamespace(runner=runner, events=events)
reports = FinalReports(environment)
listener, concurrent = runner.custom_messages[FINISH]
listener(environment=environment, msg=None)
print(json.dumps({"sent": runner.sent, "stops": runner.stopped, "concurrent": concurrent}))
"""


def collect(**request: object) -> dict:
    return run_probe(MASTER_PROBE, json.dumps(request))


def finish(stopped: bool) -> dict:
    return run_probe(WORKER_PROBE, json.dumps({"stopped": stopped}))


def test_master_asks_each_live_worker_and_waits_for_every_answer() -> None:
    result = collect(running=["a", "b"], missing=["gone"], answering=["a", "b"], timeout=10.0)

    assert sorted(result["sent"]) == [["lab_finish", "a"], ["lab_finish", "b"]]
    assert result["warnings"] == []
    # The answers came after 0.05 s: it waited for them, not for its timeout.
    assert 0.04 <= result["waited"] < 5.0


def test_master_gives_up_on_a_silent_worker_and_says_what_the_summary_misses() -> None:
    result = collect(running=["a", "b"], missing=[], answering=["a"], timeout=0.5)

    assert result["waited"] >= 0.5
    assert len(result["warnings"]) == 1
    assert result["warnings"][0].startswith("1 worker(s) sent no last stats")


def test_master_without_workers_does_not_wait() -> None:
    result = collect(running=[], missing=["gone"], answering=[], timeout=10.0)

    assert result["sent"] == []
    assert result["waited"] < 1.0


def test_running_worker_stops_its_users_which_sends_the_stats_from_test_stop() -> None:
    result = finish(stopped=False)

    assert result["stops"] == 1
    assert result["sent"] == []
    assert result["concurrent"] is True


def test_stopped_worker_sends_its_last_stats_then_says_it_is_done() -> None:
    result = finish(stopped=True)

    assert result["stops"] == 0
    assert result["sent"] == [["stats", {"requests": 7}], ["lab_finished", None]]
