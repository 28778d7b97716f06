"""`make load` and `make load-headless` for the Docker stack: Locust's master and workers
run as containers of the `load` profile, aimed at Traefik inside the lab's network and
pushing to the Pushgateway there (docker-compose.yaml sets both)."""

from __future__ import annotations

from collections.abc import Callable

from lab.errors import LabError
from lab.runtimes.contract import LoadOptions
from lab.runtimes.docker.compose import NOT_RUNNING, Compose
from lab.runtimes.docker.settings import LOCUST_PORT, DockerSettings

PROFILE = "load"
SERVICES = ("locust", "locust-worker")
# What compose answers when Ctrl-C stopped it: the normal end of a web UI session.
INTERRUPTED = 130


def load_env(options: LoadOptions, label: str) -> dict[str, str]:
    """Variables the compose file passes to Locust (LOCUST_* are Locust's own options)."""
    env = {
        "CONFIG": label,
        "WORKERS": str(options.workers),
        "LOCUST_USERS": str(options.users),
        "LOCUST_SPAWN_RATE": f"{options.spawn_rate:g}",
        "LOCUST_SHAPE": options.shape,
        "LOCUST_ARRIVAL_RATE": f"{options.arrival_rate:g}",
    }
    if options.headless:
        env |= {
            "LOCUST_HEADLESS": "true",
            "LOCUST_RUN_TIME": options.run_time,
            "LOCUST_EXPECT_WORKERS": str(options.workers),
        }
    return env


def load_args(options: LoadOptions) -> list[str]:
    # --no-deps: the stack is already up, and an attached `up` stops what it started.
    args = ["up", "--build", "--no-deps", "--scale", f"locust-worker={options.workers}"]
    if options.headless:
        # The run's verdict is the master's exit code (3 when a check fails); its end
        # stops the workers.
        args += ["--exit-code-from", "locust"]
    return [*args, *SERVICES]


def run_load(
    compose: Compose,
    settings: DockerSettings,
    label: str,
    options: LoadOptions,
    write: Callable[[str], None] = print,
) -> int:
    """Run Locust in the foreground until it ends (headless) or Ctrl-C; its exit code."""
    if options.workers < 1:
        raise LabError(f"WORKERS={options.workers} must be 1 or more")
    if label == "unknown":
        raise LabError(NOT_RUNNING)
    if not options.headless:
        write(
            f"Locust UI on {settings.url(LOCUST_PORT)} with {options.workers} "
            f"worker(s), against {label}; Ctrl-C stops the load"
        )
    try:
        code = compose.stream(load_args(options), load_env(options, label), [PROFILE])
    finally:
        # The next run starts from new containers with its own options.
        compose.compose(["rm", "--stop", "--force", *SERVICES], profiles=[PROFILE])
    if not options.headless and code == INTERRUPTED:
        return 0
    return code
