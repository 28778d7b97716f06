"""A stand-in for a supervised component: answers GET /ready with 200 once `--ready-after`
seconds have passed (503 before), and exits with code 3 after `--exit-after` seconds.

    python tests/lab/runtimes/native/fake_component.py PORT [--ready-after S] [--exit-after S]

The supervisor tests run it instead of Traefik or Prometheus, so that a process that never
becomes ready, or dies right after it did, can be made on purpose.
"""

from __future__ import annotations

import argparse
import http.server
import os
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("--ready-after", type=float, default=0.0)
    parser.add_argument("--exit-after", type=float, default=None)
    args = parser.parse_args()
    started = time.monotonic()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            ready = time.monotonic() - started >= args.ready_after
            self.send_response(200 if ready and self.path == "/ready" else 503)
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.exit_after is not None:
        threading.Timer(args.exit_after, lambda: os._exit(3)).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
