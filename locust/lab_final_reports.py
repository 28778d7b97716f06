"""Every worker's last stats reach the master before the master stops listening.

A headless distributed run ends with the master's `quit()`: it fires `test_stop`, tells
the workers to quit, waits half a second for their last stats and stops listening. A
worker sends those stats only after its own `test_stop` listeners, and ours pushes the
final state to the Pushgateway and lingers a scrape interval: on a busy host the stats
came too late, and the summary lost each worker's last report interval (up to 3 s of
requests, a third of a 10 s run). So the master's `test_stop` asks every worker to stop
now and waits, bounded, until each has sent its last stats.
"""

from __future__ import annotations

import logging
from typing import Any

import gevent.event
from locust.runners import STATE_MISSING, STATE_STOPPED, MasterRunner, WorkerRunner

log = logging.getLogger("lab.final_reports")
FINISH = "lab_finish"
FINISHED = "lab_finished"
TIMEOUT_SECONDS = 15.0


class FinalReports:
    def __init__(self, environment: Any, timeout: float = TIMEOUT_SECONDS) -> None:
        self.env = environment
        self.timeout = timeout
        self._pending: set[str] = set()
        self._done = gevent.event.Event()
        runner = environment.runner
        if isinstance(runner, MasterRunner):
            runner.register_message(FINISHED, self._on_finished)
        elif isinstance(runner, WorkerRunner):
            # Concurrent: stopping the users must not hold up the worker's message loop.
            runner.register_message(FINISH, self._on_finish, concurrent=True)

    def collect(self) -> None:
        """Master: ask each connected worker for its last stats and wait for them all."""
        runner = self.env.runner
        if not isinstance(runner, MasterRunner):
            return
        # A worker that stopped sending heartbeats would never answer.
        self._pending = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
        if not self._pending:
            return
        self._done.clear()
        for client_id in sorted(self._pending):
            runner.send_message(FINISH, None, client_id)
        if not self._done.wait(self.timeout):
            log.warning(
                "%d worker(s) sent no last stats within %.0f s: the summary misses "
                "their requests since their previous report (every 3 s)",
                len(self._pending),
                self.timeout,
            )

    def send(self) -> None:
        """Worker, once its users have stopped: send the last stats, then say so."""
        runner = self.env.runner
        if not isinstance(runner, WorkerRunner):
            return
        data: dict[str, Any] = {}
        self.env.events.report_to_master.fire(client_id=runner.client_id, data=data)
        runner.send_message("stats", data)
        runner.send_message(FINISHED)

    def _on_finished(self, msg: Any, **_: Any) -> None:
        self._pending.discard(msg.node_id)
        if not self._pending:
            self._done.set()

    def _on_finish(self, environment: Any, **_: Any) -> None:
        runner = environment.runner
        if runner.state == STATE_STOPPED:
            self.send()
        else:
            # Stopping fires test_stop, whose listener (lab_run.LabRun) calls send().
            runner.stop()
