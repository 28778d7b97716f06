"""A small client for Prometheus' HTTP API: instant and range queries, targets, rules."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from lab.errors import LabError


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Prometheus:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.http = httpx.Client(timeout=timeout)

    def _get(self, path: str, **params: Any) -> Any:
        try:
            response = self.http.get(f"{self.url}{path}", params=params)
        except httpx.HTTPError as exc:
            raise LabError(
                f"Prometheus at {self.url} does not answer ({exc}); is the stack up?"
            ) from None
        body = response.json()
        if body.get("status") != "success":
            raise LabError(f"Prometheus refused {params.get('query', path)!r}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str, time: float | None = None) -> list[Sample]:
        params: dict[str, Any] = {"query": promql}
        if time is not None:
            params["time"] = time
        data = self._get("/api/v1/query", **params)
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]

    def value(
        self, promql: str, time: float | None = None, default: float | None = None
    ) -> float | None:
        """The single value of a query that yields one series (or `default`)."""
        samples = self.query(promql, time)
        return samples[0].value if samples else default

    def query_range(
        self, promql: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        data = self._get("/api/v1/query_range", query=promql, start=start, end=end, step=step)
        return data["result"]

    def targets(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/targets", state="active")["activeTargets"]

    def page(self, name: str) -> str:
        """The address of a UI page (`graph`, `targets`, `alerts`, `rules`) on this server.

        Which UI a Prometheus serves depends on how it was built, not only on its version:
        Debian's 2.42 has no React UI and serves the classic one under /classic/ (its
        /targets is a 404), upstream 2.x and 3.x serve /targets. So the page is asked for,
        not guessed; the first address that answers is returned.
        """
        for path in (f"/{name}", f"/classic/{name}"):
            try:
                response = self.http.get(f"{self.url}{path}", follow_redirects=True)
            except httpx.HTTPError:
                break
            if response.status_code == 200:
                return f"{self.url}{path}"
        return f"{self.url}/{name}"

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._get("/api/v1/rules")["groups"]

    def series(self, match: str, start: float | None = None) -> list[dict[str, str]]:
        params: dict[str, Any] = {"match[]": match}
        if start is not None:
            params["start"] = start
        return self._get("/api/v1/series", **params)
