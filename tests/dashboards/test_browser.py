"""The native dashboards in a real browser: headless Chromium draws every panel of every
dashboard from the loaded stack's data (conftest.py), and a screenshot of each is kept in
.run/test-artifacts/ for a person to look at.

The page marks each panel with data-state ("data" once it drew at least one finite value)
and <body data-state="ready"> after its first full pass. Skipped, and said so: panels
whose every query reads cgroup-only series when this host runs replicas without cgroups.
"""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.dashboards import grafana
from tests.dashboards.conftest import LoadedLab
from tests.support import REPO

pytestmark = pytest.mark.slow

ARTIFACTS = REPO / ".run" / "test-artifacts"
WINDOW = (1600, 2400)
# Virtual time the page may use: its fetches run in real time, and Chromium waits for them.
BUDGET_MS = 20_000
# Wide enough to hold the whole load run, whenever this module runs after the fixture.
RANGE = "15m"


class PageDom(HTMLParser):
    """The attributes of <body> and of every panel <section>, and every trace link."""

    def __init__(self) -> None:
        super().__init__()
        self.body: dict[str, str] = {}
        self.panels: list[dict[str, str]] = []
        self.trace_links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "body":
            self.body = found
        elif tag == "section" and "panel" in found.get("class", "").split():
            self.panels.append(found)
        elif tag == "a" and found.get("href", "").startswith("/trace/"):
            self.trace_links.append(found["href"].removeprefix("/trace/"))


def chromium() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Chromium is not installed: run scripts/install.sh --test (Debian: chromium)")
    return found


def browse(url: str, *action: str) -> subprocess.CompletedProcess[str]:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--virtual-time-budget={BUDGET_MS}",
        *action,
        url,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def cgroup_only(panel: dict[str, Any]) -> bool:
    exprs = [target["expr"] for target in panel.get("targets", [])]
    return bool(exprs) and all(
        grafana.CGROUP_ONLY_SERIES.search(expr) or grafana.DOCKER_ONLY_SERIES.search(expr)
        for expr in exprs
    )


@pytest.mark.parametrize("dashboard", grafana.dashboards(), ids=lambda d: d["uid"])
def test_every_panel_draws_data_in_chromium(loaded: LoadedLab, dashboard: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    screenshot = ARTIFACTS / f"dashboard-{dashboard['uid']}.png"
    screenshot.unlink(missing_ok=True)
    url = f"{loaded.lab.dashboards}/d/{dashboard['uid']}?range={RANGE}&refresh=off"
    # One browser run both prints the DOM and keeps the picture a person can look at.
    result = browse(url, "--dump-dom", f"--screenshot={screenshot}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert png_size(screenshot) == WINDOW
    dom = PageDom()
    dom.feed(result.stdout)
    cgroups_off = loaded.lab.state()["cgroup_mode"] == "off"
    expected = {
        panel["title"]: panel for panel in grafana.panels(dashboard) if panel["type"] != "row"
    }
    skipped = {t for t, p in expected.items() if cgroups_off and cgroup_only(p)}

    assert dom.body.get("data-state") == "ready", result.stdout[:2000]
    assert sorted(p["data-title"] for p in dom.panels) == sorted(expected)
    without_data = {
        p["data-title"]: f"{p['data-state']} {p.get('data-error', '')}".strip()
        for p in dom.panels
        if p["data-state"] != "data" and p["data-title"] not in skipped
    }
    assert without_data == {}
    exemplar_panels = [
        p
        for p in dom.panels
        if any(t.get("exemplar") for t in expected[p["data-title"]].get("targets", []))
    ]
    # Every latency panel with exemplars links its most recent trace ids to the trace view.
    assert all(int(p["data-exemplars"]) > 0 for p in exemplar_panels)
    assert len(dom.trace_links) >= len(exemplar_panels)
    assert all(re.fullmatch(r"[0-9a-f]{32}", link) for link in dom.trace_links)


def test_exemplar_trace_link_opens_the_trace_view(loaded: LoadedLab) -> None:
    trace_id = loaded.trace_ids[-1]

    response = httpx.get(f"{loaded.lab.dashboards}/trace/{trace_id}", timeout=10)

    assert response.status_code == 200, response.text
    assert f"Trace {trace_id}" in response.text
    assert 'data-state="found"' in response.text
