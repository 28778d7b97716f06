"""Adaptive micro-batching of concurrent prediction requests.

One scikit-learn call costs about the same for 1 row as for hundreds, so under load it pays
to merge the rows of concurrent requests into one call. The batcher never waits when idle:
the first request starts a model call at once, and the requests that arrive while that call
runs form the next batch. `max_wait` can add a bounded wait for stragglers; it defaults to
zero. Model calls run in a worker thread, so the event loop keeps accepting requests, and
a failing call fails only the requests that were in it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Row = Mapping[str, Any]
PredictFn = Callable[[Sequence[Row]], np.ndarray]
# Called after each model call with the row count, its seconds and the callers' tags.
BatchObserver = Callable[[int, float, list[Any]], None]


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

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        waiting = [self._carry] if self._carry is not None else []
        while not self._queue.empty():
            waiting.append(self._queue.get_nowait())
        for job in waiting:
            if not job.future.done():
                job.future.set_exception(BatchFailedError("the service is shutting down"))
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

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            jobs = await self._collect()
            rows = [row for job in jobs for row in job.rows]
            started = loop.time()
            try:
                probabilities = await loop.run_in_executor(self._executor, self._predict, rows)
            except Exception as exc:
                error = BatchFailedError(f"model call failed: {type(exc).__name__}: {exc}")
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(error)
                continue

            if self._on_batch is not None:
                tags = [job.tag for job in jobs if job.tag is not None]
                self._on_batch(len(rows), loop.time() - started, tags)
            offset = 0
            for job in jobs:
                count = len(job.rows)
                if not job.future.done():
                    job.future.set_result(probabilities[offset : offset + count])
                offset += count
