"""The native dashboard server: the Grafana dashboards drawn in a browser without Grafana.

Routes:
- `/` lists the dashboards of grafana/dashboards/; `/d/<uid>` draws one (static page,
  uPlot charts; ?range=15m and ?var-config=... as in Grafana's URLs).
- `/api/dashboards/<uid>` is the page's spec: panels as the JSON defines them, queries
  interpolated (lab/dashboards/spec.py).
- `/api/v1/...` forwards Prometheus' read-only query API to the stack's Prometheus, so the
  page reads one origin and no CORS setting is needed.
- `/trace/<trace id>` shows a sampled trace's span tree from the run's trace files: the
  target of every exemplar link.
- `/-/ready` answers once the server runs (the supervisor's readiness check).
"""

from __future__ import annotations

import html
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from lab.dashboards import grafana, spec
from lab.errors import LabError
from lab.traces import load_trace, render_tree

STATIC = Path(__file__).parent / "static"
# Only what the page reads is forwarded: never the admin API (series deletion, snapshots).
PROMETHEUS_READ_API = re.compile(
    r"^(query|query_range|query_exemplars|series|labels|label/[A-Za-z_][A-Za-z0-9_]*/values"
    r"|metadata|targets|rules|alerts|status/buildinfo)$"
)
TRACE_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ServerConfig:
    """Where the server reads from: the stack's Prometheus, its scrape interval (Grafana's
    `timeInterval`: the lower bound of `$__interval`), the run's trace files."""

    prometheus: str
    scrape_interval: float
    trace_dir: Path
    dashboard_dir: Path = grafana.DASHBOARD_DIR


def page(title: str, body: str, *, scripts: tuple[str, ...] = ()) -> str:
    tags = "".join(f'<script src="/static/{name}"></script>' for name in scripts)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)} · capacity lab</title>
<link rel="stylesheet" href="/static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/static/dashboard.css">
</head><body>{body}{tags}</body></html>"""


def nav(dashboards: list[dict[str, Any]], current: str | None = None) -> str:
    links = "".join(
        f'<a href="/d/{html.escape(d["uid"])}"'
        + (' class="current"' if d["uid"] == current else "")
        + f">{html.escape(d.get('title', d['uid']))}</a>"
        for d in dashboards
    )
    return f'<nav><a class="home" href="/">capacity lab</a>{links}</nav>'


class DashboardServer:
    def __init__(
        self, config: ServerConfig, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        # `transport` lets tests stand in for Prometheus.
        self.http = httpx.AsyncClient(timeout=30, transport=transport)

    # ----------------------------------------------------------------- helpers

    def dashboards(self) -> list[dict[str, Any]]:
        """Read from disk on every request: an edited JSON shows at the next reload."""
        return grafana.dashboards(self.config.dashboard_dir)

    def find(self, uid: str) -> dict[str, Any] | None:
        return next((d for d in self.dashboards() if d.get("uid") == uid), None)

    async def label_values(self, selector: str, label: str, start: float, end: float) -> list[str]:
        response = await self.http.get(
            f"{self.config.prometheus}/api/v1/label/{label}/values",
            params={"match[]": selector, "start": start, "end": end},
        )
        body = response.json()
        if body.get("status") != "success":
            raise spec.SpecError(f"Prometheus refused label_values({selector}, {label}): {body}")
        return sorted(body["data"])

    # ------------------------------------------------------------------ routes

    async def index(self, _: Request) -> Response:
        dashboards = self.dashboards()
        items = "".join(
            f'<li><a href="/d/{html.escape(d["uid"])}">{html.escape(d.get("title", d["uid"]))}'
            f"</a> <span class=muted>{sum(1 for p in grafana.panels(d) if p['type'] != 'row')}"
            " panels</span></li>"
            for d in dashboards
        )
        body = (
            nav(dashboards)
            + "<main class=index><h1>Dashboards</h1>"
            + f"<ul>{items}</ul><p class=muted>Drawn from grafana/dashboards/*.json (the same "
            "files Grafana provisions in the Docker runtime), reading Prometheus at "
            f"{html.escape(self.config.prometheus)}. Exemplar dots and links on latency "
            "panels open the sampled request's trace.</p></main>"
        )
        return HTMLResponse(page("Dashboards", body))

    async def dashboard(self, request: Request) -> Response:
        uid = request.path_params["uid"]
        dashboard = self.find(uid)
        dashboards = self.dashboards()
        if dashboard is None:
            body = nav(dashboards) + f"<main><p class=error>No dashboard {html.escape(uid)}.</p>"
            return HTMLResponse(page("Not found", body + "</main>"), status_code=404)
        ranges = "".join(f'<option value="{r}">Last {r}</option>' for r in spec.RANGES)
        body = f"""{nav(dashboards, uid)}
<header data-uid="{html.escape(uid)}" data-default-range="{spec.default_range(dashboard)}">
<h1>{html.escape(dashboard.get("title", uid))}</h1>
<div id="variables"></div>
<label>Time <select id="range">{ranges}</select></label>
<span id="summary" class="muted">loading…</span>
</header>
<p class="note muted">Panels, queries, units and thresholds come from grafana/dashboards/ at
every load. Heatmaps are drawn as coloured cells (time × latency bucket, darker = more
requests); exemplar dots (◆) on latency panels and the trace links under them open the
sampled request's span tree.</p>
<main id="grid"></main>"""
        return HTMLResponse(
            page(
                dashboard.get("title", uid),
                body,
                scripts=("vendor/uPlot.iife.min.js", "dashboard.js"),
            )
        )

    async def dashboard_api(self, request: Request) -> Response:
        dashboard = self.find(request.path_params["uid"])
        if dashboard is None:
            return JSONResponse({"error": "no such dashboard"}, status_code=404)
        params = request.query_params
        try:
            range_seconds = spec.parse_duration(
                params.get("range") or spec.default_range(dashboard)
            )
            width = int(params.get("width") or spec.DEFAULT_WIDTH)
        except (spec.SpecError, ValueError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        chosen = {
            key.removeprefix("var-"): params.getlist(key)
            for key in params
            if key.startswith("var-")
        }
        wanted = spec.Request(
            end=time.time(),
            range_seconds=range_seconds,
            chosen=chosen,
            width=min(max(width, 200), 8000),
        )
        try:
            body = await spec.dashboard_spec(
                dashboard, wanted, self.config.scrape_interval, self.label_values
            )
        except httpx.HTTPError as exc:
            return JSONResponse(
                {"error": f"Prometheus at {self.config.prometheus} does not answer ({exc})"},
                status_code=502,
            )
        except spec.SpecError as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        body["dashboards"] = [
            {"uid": d["uid"], "title": d.get("title", d["uid"])} for d in self.dashboards()
        ]
        return JSONResponse(body)

    async def prometheus(self, request: Request) -> Response:
        path = request.path_params["path"]
        if not PROMETHEUS_READ_API.match(path):
            return JSONResponse(
                {"status": "error", "error": f"/api/v1/{path} is not forwarded"}, status_code=403
            )
        try:
            upstream = await self.http.request(
                request.method,
                f"{self.config.prometheus}/api/v1/{path}",
                params=list(request.query_params.multi_items()),
                content=await request.body(),
                headers={"content-type": request.headers.get("content-type", "")},
            )
        except httpx.HTTPError as exc:
            return JSONResponse(
                {
                    "status": "error",
                    "error": f"Prometheus at {self.config.prometheus} does not answer ({exc})",
                },
                status_code=502,
            )
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type", "application/json"),
        )

    async def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"].lower()
        dashboards = self.dashboards()
        if not TRACE_ID.match(trace_id):
            body = f"<p class=error>{html.escape(trace_id)} is not a trace id (32 hex digits).</p>"
            return HTMLResponse(page("Trace", nav(dashboards) + f"<main>{body}</main>"), 400)
        status, text = trace_text(self.config.trace_dir, trace_id)
        body = (
            f"{nav(dashboards)}<main class=trace><h1>Trace {trace_id}</h1>"
            f'<pre id="trace" data-state="{"found" if status == 200 else "missing"}">'
            f"{html.escape(text)}</pre>"
            f"<p class=muted>From {html.escape(str(self.config.trace_dir))}/*.jsonl; in a "
            f"terminal: <code>make trace ID={trace_id}</code></p></main>"
        )
        return HTMLResponse(page(f"Trace {trace_id[:8]}", body), status_code=status)

    async def ready(self, _: Request) -> Response:
        return PlainTextResponse("ready\n")


def trace_text(trace_dir: Path, trace_id: str) -> tuple[int, str]:
    """(HTTP status, text): the span tree, or why there is none."""
    try:
        spans = load_trace(trace_dir, trace_id)
    except LabError as exc:
        return 404, f"trace files not found: {exc}"
    if not spans:
        return 404, (
            f"trace {trace_id} is not in the trace files of {trace_dir}: it was not sampled "
            "by this stack, or its file was rotated away."
        )
    return 200, render_tree(spans)


async def unreadable_dashboard(_: Request, exc: Exception) -> Response:
    """A dashboard file being edited into invalid JSON: say which, do not crash."""
    return PlainTextResponse(f"cannot read the dashboards: {exc}\n", status_code=500)


def create_app(
    config: ServerConfig, transport: httpx.AsyncBaseTransport | None = None
) -> Starlette:
    server = DashboardServer(config, transport)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await server.http.aclose()

    return Starlette(
        lifespan=lifespan,
        exception_handlers={grafana.DashboardError: unreadable_dashboard},
        routes=[
            Route("/", server.index),
            Route("/d/{uid}", server.dashboard),
            Route("/api/dashboards/{uid}", server.dashboard_api),
            Route("/api/v1/{path:path}", server.prometheus, methods=["GET", "POST"]),
            Route("/trace/{trace_id}", server.trace),
            Route("/-/ready", server.ready),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
    )
