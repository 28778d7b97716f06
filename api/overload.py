"""Overload protection: probes answered ahead of the work, and a bounded amount of work.

Under overload a replica must stay visibly alive and turn the excess away cheaply, or the
load balancer takes it out of rotation and every client fails instead of a few:

- ProbeMiddleware answers GET /health and GET /ready before every other layer (tracing,
  HTTP metrics, body limit, admission, routing). A probe then costs a fraction of a
  prediction and never waits behind one in this process; it still waits for the event
  loop like any request, which is why the bound below matters as much.
- AdmissionMiddleware bounds the work a replica holds. A new prediction is answered 503
  with Retry-After at once, before its body is read, when it would wait longer than
  API_MAX_QUEUE_SECONDS (reason `queue_delay`), or while API_MAX_IN_FLIGHT predictions
  are in progress (reason `in_flight_limit`: a bound on memory and on the batcher's
  queue). Shed requests count in `api_requests_shed_total{handler, reason}` and, like
  every answer, in `http_requests_total` and `http_request_duration_seconds`.

The wait a new prediction faces is estimated with Little's law: the predictions waiting
(body received, answer not yet sent) divided by the predictions this replica completed
per second over the last second of work. The estimate is trusted only once the oldest
waiting prediction has waited a quarter of the bound, so a burst into an idle replica is
not shed on a throughput measured while idle. One slow request among fast ones does not
trigger shedding (the throughput stays high); a replica whose predictions stop
completing (a stuck model call) sheds at once.

Why not a plain cap on requests in flight: measured through Traefik with one replica at
0.25 CPU, 256 clients sending back to back were served within ~0.3 s (P95) with no limit,
while a cap of 64 shed 80 % of them and served a third as many: every shed answer sends
its client straight back, and answering it costs CPU too. Why not the oldest request's
wait alone: it reacts a whole bound late, so the replica admitted hundreds of requests
at once, then shed everything, in waves, and the loop lagged up to a second.

Both middlewares sit outside tracing and the HTTP metrics middleware: under overload
every microsecond of the shed path is taken from the requests being served. Measured on
one unconstrained replica answering nothing but 503s, the shed path inside tracing and
metrics sustained about 7,600 answers/s; outside them, recording its own HTTP metrics,
about 16,900. A shed request therefore gets no span.

uvicorn's own `limit_concurrency` is not used: it counts connections as well as
requests, so Traefik's pool of idle keep-alive connections would trip it, and it would
answer the health checks 503 too, ejecting a replica that is merely busy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from timeit import default_timer

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import ServiceMetrics

Probe = Callable[[Request], Awaitable[Response]]

# The `reason` label of api_requests_shed_total, also named in the 503's detail.
SHED_QUEUE_DELAY = "queue_delay"
SHED_IN_FLIGHT = "in_flight_limit"

# Completions over this many seconds make the throughput estimate.
THROUGHPUT_WINDOW_S = 1.0


class ProbeMiddleware:
    """Answer GET requests to the probe paths with their endpoints, skipping the stack."""

    def __init__(self, app: ASGIApp, probes: Mapping[str, Probe]) -> None:
        self.app = app
        self.probes = dict(probes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            probe = self.probes.get(scope["path"])
            if probe is not None:
                response = await probe(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def shed_body(reason: str, limit: str, retry_after_s: int) -> bytes:
    """The 503 body of a shed request, in the error format of api/errors.py."""
    return orjson.dumps(
        {
            "error": "overloaded",
            "detail": (
                f"this replica is past its capacity ({reason}: {limit}); "
                f"retry after {retry_after_s} s"
            ),
        }
    )


class QueueEstimate:
    """The predictions waiting in a replica and how fast it completes them.

    Plain structures suffice: everything here runs on the one event loop thread.
    """

    def __init__(self, clock: Callable[[], float] = default_timer) -> None:
        self.clock = clock
        # When each waiting request's body arrived, oldest first: dicts keep insertion
        # order and arrival times only grow, so the oldest is the first entry.
        self._arrived: dict[int, float] = {}
        # When each of the requests completed in the last window finished.
        self._completed: deque[float] = deque()
        # Since when requests have been waiting without a break.
        self._busy_since = 0.0

    @property
    def waiting(self) -> int:
        return len(self._arrived)

    def arrive(self, request_id: int) -> None:
        """The request's body has arrived: it now waits for this replica's work."""
        if request_id not in self._arrived:
            now = self.clock()
            if not self._arrived:
                self._busy_since = now
            self._arrived[request_id] = now

    def leave(self, request_id: int) -> None:
        """The request is answered (or failed); it counts as completed if it waited."""
        if self._arrived.pop(request_id, None) is not None:
            self._completed.append(self.clock())

    def oldest_wait(self, now: float) -> float:
        """Seconds the oldest waiting request has waited since its body arrived."""
        for arrived in self._arrived.values():
            return now - arrived
        return 0.0

    def throughput(self, now: float) -> float:
        """Requests completed per second of work over the last window."""
        completed = self._completed
        while completed and completed[0] < now - THROUGHPUT_WINDOW_S:
            completed.popleft()
        # A replica busy for less than the window has worked only that long.
        worked = min(THROUGHPUT_WINDOW_S, now - self._busy_since)
        return len(completed) / worked if worked > 0 else 0.0

    def too_long(self, now: float, bound_s: float) -> bool:
        """Whether a request arriving now would wait longer than `bound_s` seconds."""
        if not self._arrived or self.oldest_wait(now) <= bound_s / 4:
            return False
        rate = self.throughput(now)
        return rate <= 0 or self.waiting / rate > bound_s


class AdmissionMiddleware:
    """Sheds POST requests to `paths` while the replica is past its capacity (see above).

    The paths are route templates without parameters, so a path is its `handler` label.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        paths: Collection[str],
        max_in_flight: int,
        max_queue_s: float,
        retry_after_s: int,
        metrics: ServiceMetrics,
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.max_in_flight = max_in_flight
        self.max_queue_s = max_queue_s
        self.in_flight = 0
        self.queue = QueueEstimate()
        self._next_id = 0
        self._answers = {
            SHED_IN_FLIGHT: self._answer(
                SHED_IN_FLIGHT,
                f"{max_in_flight} predictions in progress, API_MAX_IN_FLIGHT",
                retry_after_s,
            ),
            SHED_QUEUE_DELAY: self._answer(
                SHED_QUEUE_DELAY,
                f"a prediction would wait longer than {max_queue_s:g} s, API_MAX_QUEUE_SECONDS",
                retry_after_s,
            ),
        }
        # The metric children of each (path, reason), resolved once.
        self._counters = {
            (path, reason): (
                metrics.shed.labels(path, reason),
                metrics.requests.labels(path, "POST", "503"),
                metrics.latency.labels(path, "POST", "503"),
            )
            for path in self.paths
            for reason in self._answers
        }

    @staticmethod
    def _answer(reason: str, limit: str, retry_after_s: int) -> tuple[Message, Message]:
        body = shed_body(reason, limit, retry_after_s)
        start = {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after_s).encode()),
            ],
        }
        return start, {"type": "http.response.body", "body": body}

    def _refusal(self, now: float) -> str | None:
        if self.in_flight >= self.max_in_flight:
            return SHED_IN_FLIGHT
        if self.queue.too_long(now, self.max_queue_s):
            return SHED_QUEUE_DELAY
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        now = default_timer()
        reason = self._refusal(now)
        if reason is not None:
            # Answered before the body is read: the cheapest answer this server can give.
            # The connection stays open, so the proxy need not open a new one.
            start, body = self._answers[reason]
            await send(start)
            await send(body)
            shed, requests, latency = self._counters[scope["path"], reason]
            shed.inc()
            requests.inc()
            latency.observe(default_timer() - now)
            return

        request_id = self._next_id
        self._next_id += 1
        queue = self.queue

        async def timed_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                queue.arrive(request_id)
            return message

        self.in_flight += 1
        try:
            await self.app(scope, timed_receive, send)
        finally:
            self.in_flight -= 1
            queue.leave(request_id)
