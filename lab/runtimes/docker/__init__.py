"""The Docker Compose runtime: the lab's stack as containers (docker-compose.yaml).

`runtime.DockerRuntime` implements the lab's contract (lab/runtimes/contract.py) by
running `docker compose` and `docker` as programs; `python -m lab` drives it.
"""
