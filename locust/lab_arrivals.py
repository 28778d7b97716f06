"""The open model's clock: arrivals of a Poisson process at the offered rate.

One greenlet per Locust process draws exponential gaps at the rate the schedule offers
now (--arrival-rate, or the steps of --arrival-rates) and hands out one token per arrival;
each user takes a token before each task. A rate change applies at the next arrival, not
when a user's own long wait ends, and when every user is busy the tokens wait: the
achieved rate then falls short of the offered one, which the summary reports. A process
offers its share of the rate: all of it when alone, its users' share among workers;
a master runs no users and no clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import gevent
from gevent.queue import Queue
from lab_options import arrival_rate_at


class ArrivalClock:
    def __init__(
        self, environment: Any, started: float, on_arrival: Callable[[], None] | None = None
    ) -> None:
        self.environment = environment
        self.started = started
        self.on_arrival = on_arrival
        self.tokens: Queue[int] = Queue()
        self.rng = random.Random()
        self._greenlet = gevent.spawn(self._run)

    def _share(self) -> float:
        """This process's part of the total rate (its users among all users).

        A worker's users are set just after its test starts: until then it has none and
        offers nothing, rather than the whole rate."""
        options = self.environment.parsed_options
        # A worker learns the run's users from its master (lab_run.LabRun.test_start).
        users = getattr(options, "lab_users_total", None) or options.num_users
        total = max(1, users or 1)
        mine = self.environment.runner.target_user_count
        return min(1.0, mine / total)

    def _run(self) -> None:
        options = self.environment.parsed_options
        due = time.monotonic()
        while True:
            rate = arrival_rate_at(options, time.time() - self.started) * self._share()
            if rate <= 0:
                gevent.sleep(0.1)
                due = time.monotonic()
                continue
            due += self.rng.expovariate(rate)
            # Behind schedule (a busy process): catch up at once rather than drift.
            gevent.sleep(max(0.0, due - time.monotonic()))
            self.tokens.put(1)
            if self.on_arrival is not None:
                self.on_arrival()

    def take(self) -> None:
        """Block the calling user until the next arrival is due."""
        self.tokens.get()

    def stop(self) -> None:
        self._greenlet.kill(block=False)
