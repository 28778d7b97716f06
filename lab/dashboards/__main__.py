"""`python -m lab.dashboards`: the native stack's dashboard server.

Internal: `make up` (NativeStack) starts it with the stack's addresses, and the
supervisor restarts it with the same command line. The user opens the URL `make demo`
and `make status` print.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn

from lab.dashboards.server import ServerConfig, create_app
from lab.errors import reports_errors


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m lab.dashboards", description=__doc__)
    root.add_argument("--host", default="127.0.0.1")
    root.add_argument("--port", type=int, required=True)
    root.add_argument("--prometheus", required=True, help="the stack's Prometheus URL")
    root.add_argument(
        "--scrape-interval", type=float, required=True, help="seconds (lower bound of steps)"
    )
    root.add_argument("--trace-dir", type=Path, required=True, help="the run's trace files")
    return root


@reports_errors("lab dashboards")
def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    config = ServerConfig(
        prometheus=args.prometheus.rstrip("/"),
        scrape_interval=args.scrape_interval,
        trace_dir=args.trace_dir,
    )
    # One event loop in one process is plenty for a few people's browsers; the access log
    # is off, every panel refresh would write a line.
    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
