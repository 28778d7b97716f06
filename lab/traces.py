"""Sampled traces of the native runtime: read from its span files, drawn as a tree.

Each process of the native stack that records spans writes them, one JSON object a line,
to `<run dir>/traces/<process>.jsonl` with the OpenTelemetry SDK's own exporter: every
replica (API_TRACES_FILE, set by the runtime; the format is `span_line` in
api/tracing.py) and Locust's client spans (locust/lab_users.py). A file past its size
bound becomes `<name>.jsonl.1`, so both are read. `python -m lab trace ID` prints the
tree of one trace id, such as an exemplar's `trace_id` on a latency bucket in
Prometheus; `load_trace` and `render_tree` are the same for other callers (the native
dashboard).

Traefik records no span in either runtime (it passes `traceparent` through; see
tracing/README.md), so a replica's span hangs directly under the client's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.errors import LabError

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
# Attributes worth a glance in the tree, in this order, when a span has them.
_SHOWN = ("http.response.status_code", "model.batch_size", "model.engine")


@dataclass(frozen=True)
class Span:
    """One stored span; times in Unix nanoseconds, ids in lower-case hex."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status: str
    attributes: dict[str, Any] = field(default_factory=dict)
    resource: dict[str, Any] = field(default_factory=dict)
    # The file the span was read from.
    source: str = ""

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def process(self) -> str:
        """Which process recorded it: service name and instance (replica, Locust pid)."""
        service = str(self.resource.get("service.name", "unknown service"))
        instance = self.resource.get("service.instance.id")
        return f"{service} {instance}" if instance else service

    @classmethod
    def from_record(cls, record: dict[str, Any], source: str) -> Span:
        return cls(
            trace_id=str(record["trace_id"]),
            span_id=str(record["span_id"]),
            parent_span_id=record.get("parent_span_id") or None,
            name=str(record["name"]),
            kind=str(record.get("kind", "INTERNAL")),
            start_ns=int(record["start_time_unix_nano"]),
            end_ns=int(record["end_time_unix_nano"]),
            status=str(record.get("status", "UNSET")),
            attributes=dict(record.get("attributes") or {}),
            resource=dict(record.get("resource") or {}),
            source=source,
        )


def normalise_trace_id(text: str) -> str:
    """A trace id as the files hold it (32 lower-case hex digits); LabError if it is not
    one. Accepts the forms people paste: upper case, dashes, a `0x` prefix."""
    candidate = text.strip().lower().removeprefix("0x").replace("-", "")
    if not _TRACE_ID.match(candidate) or candidate == "0" * 32:
        raise LabError(
            f"{text!r} is not a trace id: give the 32 hexadecimal digits of an exemplar's "
            "trace_id (make trace ID=4bf92f3577b34da6a3ce929d0e0e4736)"
        )
    return candidate


def trace_files(trace_dir: Path) -> list[Path]:
    """The span files under `trace_dir`, rotated ones included."""
    if not trace_dir.is_dir():
        return []
    return sorted(p for p in trace_dir.iterdir() if p.name.endswith((".jsonl", ".jsonl.1")))


def _spans_in(path: Path, trace_id: str) -> Iterator[Span]:
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError:
        # A file rotated away between listing and opening holds nothing we miss: its
        # spans are in the `.1` file, listed too.
        return
    with handle:
        for line in handle:
            # The id is searched as text first: json.loads on every line of a full
            # file costs seconds, the substring test milliseconds.
            if trace_id not in line:
                continue
            try:
                record = json.loads(line)
                if record.get("trace_id") == trace_id:
                    yield Span.from_record(record, path.name)
            except (ValueError, KeyError, TypeError):
                # A line cut short by a process killed mid-write is skipped, not fatal.
                continue


def load_trace(trace_dir: Path, trace_id: str) -> list[Span]:
    """Every stored span of `trace_id` under `trace_dir`, earliest first; empty when the
    id is in no file. LabError when the id is malformed or no span file exists."""
    wanted = normalise_trace_id(trace_id)
    files = trace_files(trace_dir)
    if not files:
        raise LabError(
            f"no trace files in {trace_dir}: spans are stored by the native runtime "
            "(`make up RUNTIME=native`, then send sampled requests: `make load`, or a "
            "request with a `traceparent` header ending in -01); with Docker, open traces "
            "in Grafana's Tempo data source"
        )
    unique: dict[str, Span] = {}
    for path in files:
        for span in _spans_in(path, wanted):
            unique.setdefault(span.span_id, span)
    return sorted(unique.values(), key=lambda s: (s.start_ns, s.end_ns))


def _details(span: Span) -> str:
    shown = [f"{key}={span.attributes[key]}" for key in _SHOWN if key in span.attributes]
    if span.status == "ERROR":
        shown.append("ERROR")
    return f"  {' '.join(shown)}" if shown else ""


def render_tree(spans: Iterable[Span]) -> str:
    """The spans of one trace as an indented tree: name, kind, duration, start offset
    from the trace's first span, attributes worth a glance, and the process."""
    spans = sorted(spans, key=lambda s: (s.start_ns, s.end_ns))
    if not spans:
        return "no spans"
    by_id = {span.span_id: span for span in spans}
    children: dict[str | None, list[Span]] = {}
    for span in spans:
        # A parent that was not stored (a client without a span file, a proxy that
        # records none) makes its child a root of what is shown.
        parent = span.parent_span_id if span.parent_span_id in by_id else None
        children.setdefault(parent, []).append(span)
    origin = spans[0].start_ns
    end = max(span.end_ns for span in spans)
    processes = sorted({span.process for span in spans})
    lines = [
        f"trace {spans[0].trace_id}: {len(spans)} spans from {len(processes)} "
        f"process{'es' if len(processes) != 1 else ''} "
        f"({', '.join(processes)}), {(end - origin) / 1e6:.2f} ms",
    ]

    def draw(span: Span, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        orphan = ""
        if root and span.parent_span_id and span.parent_span_id not in by_id:
            orphan = f"  (parent {span.parent_span_id} not stored)"
        lines.append(
            f"{prefix}{branch}{span.name} [{span.kind}] {span.duration_ms:.2f} ms "
            f"at +{(span.start_ns - origin) / 1e6:.2f} ms  ({span.process}){_details(span)}"
            f"{orphan}"
        )
        below = children.get(span.span_id, [])
        inner = prefix if root else prefix + ("   " if last else "│  ")
        for index, child in enumerate(below):
            draw(child, inner, index == len(below) - 1, False)

    for root_span in children.get(None, []):
        draw(root_span, "", True, True)
    return "\n".join(lines)


def default_trace_dir() -> Path:
    """Where the native runtime stores spans: <LAB_RUN_DIR>/traces."""
    from lab.runtimes.native.settings import NativeSettings

    return NativeSettings().run_dir / "traces"


def show_trace(trace_id: str, trace_dir: Path | None = None) -> str:
    """What `python -m lab trace ID` prints; LabError with what to do when there is none."""
    directory = trace_dir if trace_dir is not None else default_trace_dir()
    wanted = normalise_trace_id(trace_id)
    spans = load_trace(directory, wanted)
    if not spans:
        count = len(trace_files(directory))
        raise LabError(
            f"trace {wanted} is in none of the {count} trace files in {directory}: only "
            "sampled requests are stored (OTEL_TRACES_SAMPLER_ARG, 1 % by default), spans "
            "reach the file within about 5 s, and `make down` then `make up` starts afresh"
        )
    return render_tree(spans)
