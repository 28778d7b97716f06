"""Load shapes that change the user count during a run: steps and spike.

`ramp` and `open` need no shape class (Locust's own -u/-r/-t; the arrival clock of
lab_arrivals), so the web UI keeps its user and spawn-rate fields for them.
"""

from __future__ import annotations

from typing import Any

from locust import LoadTestShape


class TimedShape(LoadTestShape):
    """A shape over --run-time (300 s when unset): users as a function of time."""

    abstract = True
    use_common_options = True

    def tick(self) -> tuple[int, float] | None:
        options = self.runner.environment.parsed_options
        total = options.run_time or 300
        run_time = self.get_run_time()
        if run_time >= total:
            return None
        return self.users_at(run_time, total, options)

    def users_at(self, run_time: float, total: float, options: Any) -> tuple[int, float]:
        raise NotImplementedError


class StepsShape(TimedShape):
    """Users rise to -u in --steps equal steps, each held for run-time / steps."""

    def users_at(self, run_time: float, total: float, options: Any) -> tuple[int, float]:
        steps = max(1, options.steps)
        step = min(steps, int(run_time // (total / steps)) + 1)
        return max(1, round(options.num_users * step / steps)), options.spawn_rate


class SpikeShape(TimedShape):
    """-u users; in the middle fifth of the run, --spike-factor times as many."""

    def users_at(self, run_time: float, total: float, options: Any) -> tuple[int, float]:
        in_spike = 0.4 * total <= run_time < 0.6 * total
        users = options.num_users * (options.spike_factor if in_spike else 1)
        # The spike arrives as fast as it can: that is what makes it a spike.
        return max(1, round(users)), max(options.spawn_rate, users)


SHAPE_CLASSES = {"steps": StepsShape, "spike": SpikeShape}
