"""Run one replica: verify the model, then serve with uvicorn and drain on SIGTERM.

On the first SIGTERM (or Ctrl-C) /ready turns 503 at once while requests, in flight and
new, are still served for API_DRAIN_SECONDS, so the load balancer's health check takes the
replica out before it stops listening. Then uvicorn shuts down gracefully: in-flight
requests get API_SHUTDOWN_TIMEOUT_SECONDS to finish. A second signal skips the drain.
"""

from __future__ import annotations

import errno
import gc
import logging
import signal
import socket
import sys
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from api.artefact import ArtefactError
from api.main import create_app, load_model, set_draining
from api.resources import ResourceError
from api.settings import ApiSettings

log = logging.getLogger("api.serve")


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI, drain_seconds: float) -> None:
        super().__init__(config)
        self._app = app
        self._drain_seconds = drain_seconds
        self._drain_deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # The exit is graceful and complete, so the signal is not re-raised at the end
        # (uvicorn would, ending the process "killed by SIGTERM" instead of with 0).
        if self._drain_deadline is None and self._drain_seconds > 0 and not self.should_exit:
            self._drain_deadline = time.monotonic() + self._drain_seconds
            set_draining(self._app, True)
            log.info(
                "%s received: draining for %.1f s", signal.Signals(sig).name, self._drain_seconds
            )
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_deadline is not None and time.monotonic() >= self._drain_deadline:
            self.should_exit = True
        return await super().on_tick(counter)


def tune_garbage_collector(young_threshold: int) -> None:
    """Move everything loaded so far (model, libraries, app) out of the garbage
    collector's sight, and collect the young generation less often.

    A full collection walks every tracked object; with scikit-learn, pandas and ONNX
    Runtime loaded that is hundreds of thousands, and the pause lands on whichever
    requests are in flight: it was most of this service's P95 at full load (see bench/).
    Objects made while serving are collected as usual, but with Python's default
    threshold (700) the young generation was collected ~430 times a second at 11,000
    requests/s, walking the requests in flight each time: 6 % of the CPU in all. With
    API_GC_YOUNG_THRESHOLD (10,000) it is collected about once a second: 4 % more
    requests/s in the same run (bench/README.md), the memory held by cycles waiting for
    collection stays bounded by that many objects.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(young_threshold, middle, old)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def uvicorn_config(app: FastAPI, settings: ApiSettings) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # One worker per process: the replica is the unit of scale.
        workers=1,
        loop=settings.loop,
        http="httptools",
        lifespan="on",
        access_log=settings.access_log,
        log_level=settings.log_level,
        timeout_keep_alive=settings.keep_alive_seconds,
        # Seconds as given: uvicorn hands them to asyncio.wait_for, which takes fractions,
        # and 0 cancels in-flight requests at once. (None would mean "wait forever", which
        # no setting asks for: a replica must always end.)
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        server_header=False,
    )


def _fail(message: str) -> int:
    print(f"api: {message}", file=sys.stderr)
    return 2


def main() -> int:
    try:
        settings = ApiSettings()
    except (ValidationError, ResourceError) as exc:
        return _fail(f"invalid setting: {exc}".replace("\n", " "))
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s {settings.replica} %(levelname)s %(name)s: %(message)s",
    )
    try:
        model = load_model(settings)
    except ArtefactError as exc:
        return _fail(str(exc))
    if settings.port and not _port_free(settings.host, settings.port):
        return _fail(
            f"port {settings.port} on {settings.host} is already in use; stop what holds it "
            f"(`ss -ltnp 'sport = :{settings.port}'` shows it) or set API_PORT"
        )
    app = create_app(settings, model=model)
    server = DrainingServer(uvicorn_config(app, settings), app, settings.drain_seconds)
    tune_garbage_collector(settings.gc_young_threshold)
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
