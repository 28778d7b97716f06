"""Adaptive micro-batching of concurrent prediction requests.

One scikit-learn call costs about the same for 1 row as for hundreds, so under load it pays
to merge the rows of concurrent requests into one call. The batcher never waits when idle:
the first request starts a model call at once, and the requests that arrive while that call
runs form the next batch. `max_wait` can add a bounded wait for stragglers; it defaults to
zero. Model calls run in a worker thread, so the event loop keeps accepting requests, and
a failing call fails only the requests that were in it.

The queue itself has no bound: the admission limit in front of the prediction routes
(api/overload.py, API_MAX_IN_FLIGHT) bounds the requests that can be waiting here, and
sheds the others with a fast 503. `problem()` tells readiness when this batcher can no
longer answer: its task has ended, or one model call has run far longer than any should.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Row = Mapping[str, Any]
PredictFn = Callable[[Sequence[Row]], np.ndarray]
# Called after each model call with the row count, its seconds and the callers' tags.
BatchObserver = Callable[[int, float, list[Any]], None]

log = logging.getLogger("api.batcher")


class BatchFailedError(RuntimeError):
    """The model call holding this request's rows raised."""


@dataclass
class _Job:
    rows: Sequence[Row]
    future: asyncio.Future[np.ndarray] = field(repr=False)
    tag: Any = None


class MicroBatcher:
    def __init__(
        self,
        predict: PredictFn,
        *,
        max_rows: int,
        max_wait_s: float = 0.0,
        on_batch: BatchObserver | None = None,
    ) -> None:
        self._predict = predict
        self._max_rows = max_rows
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        # A job too big to join the batch being collected leads the next one.
        self._carry: _Job | None = None
        # time.monotonic() when the model call under way started; None between calls.
        self._call_started: float | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")
        self._task.add_done_callback(self._report_exit)

    @staticmethod
    def _report_exit(task: asyncio.Task[None]) -> None:
        # The loop only ends by cancellation (stop()); anything else leaves every later
        # prediction failing, so it is logged where the operator looks, and readiness
        # turns 503 (see problem()).
        if not task.cancelled() and task.exception() is not None:
            log.error("the micro-batcher stopped: %r", task.exception())

    def problem(self, stuck_after_s: float) -> tuple[str, str] | None:
        """Why this batcher cannot answer now, as (reason, detail); None when it can.

        `stuck_after_s` is how long one model call may run before it counts as stuck:
        a call holds the only inference thread, so every request behind it waits.
        """
        if self._task is None:
            return "batcher_not_started", "the micro-batcher has not started"
        if self._task.done():
            if self._task.cancelled():
                return "batcher_dead", "the micro-batcher was stopped"
            return "batcher_dead", f"the micro-batcher stopped: {self._task.exception()!r}"
        started = self._call_started
        if started is not None:
            running = time.monotonic() - started
            if running > stuck_after_s:
                return (
                    "model_call_stuck",
                    f"a model call has been running for {running:.1f} s "
                    f"(limit {stuck_after_s:g} s, API_MODEL_CALL_STUCK_SECONDS)",
                )
        return None

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # A task that ended with an error has been logged (_report_exit) and must not
            # break the shutdown.
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail_waiting([], BatchFailedError("the service is shutting down"))
        self._executor.shutdown(wait=True)

    async def predict(self, rows: Sequence[Row], tag: Any = None) -> np.ndarray:
        """Probabilities for `rows`, computed in a batch with whatever else is waiting.

        `tag` travels with the rows to the batch observer: the caller's trace exemplar,
        since the model call runs outside every request's context.
        """
        if self._task is None or self._task.done():
            raise BatchFailedError("the batcher is not running")
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Job(rows, future, tag))
        return await future

    async def _collect(self) -> list[_Job]:
        first, self._carry = self._carry, None
        jobs = [first if first is not None else await self._queue.get()]
        size = len(jobs[0].rows)
        deadline = None
        while size < self._max_rows:
            if self._queue.empty():
                if self._max_wait_s <= 0:
                    break
                loop = asyncio.get_running_loop()
                deadline = deadline or loop.time() + self._max_wait_s
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                job = self._queue.get_nowait()
            if size + len(job.rows) > self._max_rows:
                self._carry = job
                break
            jobs.append(job)
            size += len(job.rows)
        return jobs

    def _fail_waiting(self, jobs: list[_Job], error: BatchFailedError) -> None:
        """Answer `jobs`, the carried job and every queued one with `error`."""
        waiting = [*jobs, *([self._carry] if self._carry is not None else [])]
        self._carry = None
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(error)

    async def _run(self) -> None:
        jobs: list[_Job] = []
        try:
            await self._serve(jobs)
        except Exception as exc:
            # A fault of the batcher itself (a failing model call is handled in _serve)
            # ends it; the requests it holds get an answer instead of waiting forever.
            reason = f"the micro-batcher stopped: {type(exc).__name__}: {exc}"
            self._fail_waiting(jobs, BatchFailedError(reason))
            raise

    async def _serve(self, jobs: list[_Job]) -> None:
        """Collect and run batches forever; `jobs` holds the batch under way."""
        loop = asyncio.get_running_loop()
        while True:
            jobs[:] = await self._collect()
            rows = [row for job in jobs for row in job.rows]
            started = loop.time()
            self._call_started = time.monotonic()
            try:
                probabilities = await loop.run_in_executor(self._executor, self._predict, rows)
            except Exception as exc:
                error = BatchFailedError(f"model call failed: {type(exc).__name__}: {exc}")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue
            finally:
                self._call_started = None

            if self._on_batch is not None:
                tags = [job.tag for job in jobs if job.tag is not None]
                self._on_batch(len(rows), loop.time() - started, tags)
            offset = 0
            for job in jobs:
                count = len(job.rows)
                if not job.future.done():
                    job.future.set_result(probabilities[offset : offset + count])
                offset += count
            jobs.clear()
