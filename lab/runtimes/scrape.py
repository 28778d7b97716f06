"""Wait until Prometheus scrapes exactly the replicas a runtime has just started.

The Docker and Kubernetes runtimes end every change of deployment here: their replicas
are discovered by Prometheus (Docker SD, a PodMonitor), so "ready" also means that the
`api` job lists these replicas and no others, each up and carrying the new `config`
label. Only the message's hint on a timeout differs between them. The native runtime
writes its own targets file and waits on replica names alone (native/stack.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from lab.errors import LabError


class Targets(Protocol):
    """What the wait reads: Prometheus' active targets (monitoring/prom.py)."""

    def targets(self) -> list[dict[str, Any]]: ...


def wait_scraped(
    prometheus: Targets,
    job: str,
    names: set[str],
    label: str,
    *,
    timeout_seconds: float,
    poll_seconds: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
    hint: str = "",
) -> None:
    """Return once `job`'s targets are exactly `names`, all up with config=`label`;
    LabError after `timeout_seconds`, saying what Prometheus has, then `hint`."""
    deadline = clock() + timeout_seconds
    seen: dict[str, str] = {}
    while True:
        try:
            targets = [t for t in prometheus.targets() if t["labels"].get("job") == job]
            seen = {
                t["labels"].get("replica", ""): f"{t['health']}, {t['labels'].get('config')}"
                for t in targets
            }
        except LabError:
            # Prometheus itself may still be starting: that is one more reason to wait.
            seen = {}
        if seen == {name: f"up, {label}" for name in names}:
            return
        if clock() >= deadline:
            raise LabError(
                f"Prometheus does not scrape the replicas as expected after "
                f"{timeout_seconds:.0f} s: wanted {sorted(names)} up "
                f"with config={label}, has {seen or 'no api target'}" + (f" {hint}" if hint else "")
            )
        sleep(poll_seconds)
