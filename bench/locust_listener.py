"""Cost of the lab's Locust listener: requests/s of one Locust process with and without it.

The target is a bare ASGI app pinned to CPU 0, far faster than one Locust process, so
Locust (pinned to CPU 1) is the bottleneck and any cost of the listener shows as fewer
requests per second. Runs alternate with and without the listener; the best of each is
kept. Writes bench/results/locust-listener.json and .md.
"""

from __future__ import annotations

import json
import socket
import subprocess

from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from bench.common import (
    REPO,
    VENV_BIN,
    machine,
    pinned,
    start_server,
    stop_server,
    versions,
    write_results,
)


class ListenerBenchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_")

    seconds: int = 15
    users: int = 64
    repeats: int = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def locust_rps(host: str, listener: bool, settings: ListenerBenchSettings) -> float:
    command = pinned(
        [
            str(VENV_BIN / "locust"),
            "-f", "bench/locust_overhead_locustfile.py",
            "--headless", "--json", "--only-summary",
            "-u", str(settings.users), "-r", str(settings.users),
            "-t", f"{settings.seconds}s", "--host", host,
        ],
        cpu=1,
    )  # fmt: skip
    env = {"LAB_LISTENER": "1" if listener else "0", "PATH": str(VENV_BIN) + ":/usr/bin:/bin"}
    result = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=settings.seconds + 60
    )
    stats = json.loads(result.stdout)
    requests = sum(entry["num_requests"] for entry in stats)
    start = min(entry["start_time"] for entry in stats)
    end = max(entry["last_request_timestamp"] for entry in stats)
    return requests / (end - start)


def main() -> None:
    settings = ListenerBenchSettings()
    console = Console()
    port = free_port()
    target = start_server(
        [str(VENV_BIN / "uvicorn"), "bench.targets:bare_asgi", "--port", str(port),
         "--no-access-log", "--loop", "uvloop", "--http", "httptools", "--log-level", "warning"],
        port,
        cpu=0,
    )  # fmt: skip
    runs: dict[str, list[float]] = {"without": [], "with": []}
    try:
        for repeat in range(settings.repeats):
            for mode in ("without", "with"):
                rps = locust_rps(f"http://127.0.0.1:{port}", mode == "with", settings)
                runs[mode].append(round(rps, 1))
                console.print(f"run {repeat + 1}: {mode} listener {rps:,.0f} requests/s")
    finally:
        stop_server(target)
    best = {mode: max(values) for mode, values in runs.items()}
    overhead = 1 - best["with"] / best["without"]
    per_request_us = (1 / best["with"] - 1 / best["without"]) * 1e6
    data = {
        "benchmark": "locust-listener",
        "machine": machine(),
        "versions": versions("locust", "prometheus-client", "gevent"),
        "settings": settings.model_dump(),
        "runs": runs,
        "best": best,
        "throughput_cost": round(overhead, 4),
        "cost_per_request_us": round(per_request_us, 1),
    }
    markdown = (
        "| one Locust process (FastHttpUser, 1 core) | requests/s |\n| --- | ---: |\n"
        f"| without the lab listener | {best['without']:,.0f} |\n"
        f"| with the lab listener | {best['with']:,.0f} |\n"
        f"| cost | {overhead:.1%} of throughput, {per_request_us:.1f} us a request |\n"
    )
    json_path, _ = write_results("locust-listener", data, markdown)
    console.print(markdown)
    console.print(f"written to {json_path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
