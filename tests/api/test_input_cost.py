"""Bad input costs little: a 422 stays small and cheap whatever the body holds.

CPU costs are compared within one run (process time of the same process), never against
a wall-clock threshold: a refused body may cost a few times what parsing it costs, not
the ~20-35 times it cost when every unknown key became an error of its own.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from fastapi.testclient import TestClient

import api.errors
from api.errors import MAX_ERRORS
from tests.support import PENGUIN, running_replica, strict_json

# Well under the smallest bound a 256 KB body used to get (2 MB for unknown keys).
MAX_REPLY_BYTES = 16 * 1024
# A refused body may cost this many times a same-size body that yields one error, or the
# parse of its JSON. Measured here: ~2x and ~1x; before the screen: ~35x and ~21x.
MAX_COST_RATIO = 6
BODY_LIMIT = 262_144
JSON = {"content-type": "application/json"}


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def unknown_keys_body(limit: int = BODY_LIMIT) -> tuple[bytes, int]:
    """The largest body of unknown keys under `limit` bytes, and how many keys it holds."""
    keys = (limit - 1) // len(b'"k000000":7,')
    return compact(dict.fromkeys((f"k{i:06d}" for i in range(keys)), 7)), keys


def one_key_body(size: int) -> bytes:
    """A body of `size` bytes whose whole weight is one unknown key's string value."""
    return compact({"k": "x" * (size - len(b'{"k":""}'))})


def min_cpu(action: Callable[[], Any], repeat: int = 5) -> float:
    """The least process time of `repeat` runs: the cost without the machine's noise."""
    costs = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        costs.append(time.process_time() - started)
    return min(costs)


def test_body_of_unknown_keys_gets_a_small_cheap_422_naming_them(client: TestClient) -> None:
    many, keys = unknown_keys_body()
    one = one_key_body(len(many))
    assert BODY_LIMIT - 64 < len(many) <= BODY_LIMIT
    assert len(one) == len(many)

    response = client.post("/predict", content=many, headers=JSON)

    assert response.status_code == 422
    assert len(response.content) < MAX_REPLY_BYTES
    body = strict_json(response.text)
    assert body["error"] == "validation_error"
    assert [d["field"] for d in body["detail"]] == [f"k{i:06d}" for i in range(MAX_ERRORS)]
    assert {d["type"] for d in body["detail"]} == {"extra_forbidden"}
    assert body["detail"][3]["input"] == 7
    assert body["errors_omitted"] == keys - MAX_ERRORS

    many_cost = min_cpu(lambda: client.post("/predict", content=many, headers=JSON))
    one_cost = min_cpu(lambda: client.post("/predict", content=one, headers=JSON))
    parse_cost = min_cpu(lambda: json.loads(many))
    assert many_cost < MAX_COST_RATIO * one_cost, (many_cost, one_cost)
    assert many_cost < MAX_COST_RATIO * parse_cost, (many_cost, parse_cost)


def test_batch_of_bad_instances_lists_the_first_errors_and_counts_the_rest(
    client: TestClient,
) -> None:
    valid = compact({"instances": [PENGUIN] * 256})
    bad = compact({"instances": [{name: "x" * 40 for name in PENGUIN}] * 256})

    response = client.post("/predict/batch", content=bad, headers=JSON)

    assert response.status_code == 422
    assert len(response.content) < MAX_REPLY_BYTES
    body = strict_json(response.text)
    assert len(body["detail"]) == MAX_ERRORS
    assert body["detail"][0]["field"] == "instances.0.island"
    assert body["detail"][6]["field"] == "instances.1.island"
    assert body["errors_omitted"] == 256 * len(PENGUIN) - MAX_ERRORS
    bad_cost = min_cpu(lambda: client.post("/predict/batch", content=bad, headers=JSON))
    valid_cost = min_cpu(lambda: client.post("/predict/batch", content=valid, headers=JSON))
    assert bad_cost < MAX_COST_RATIO * valid_cost, (bad_cost, valid_cost)


def test_batch_of_instances_with_unknown_keys_is_refused_on_them(client: TestClient) -> None:
    instance = {**PENGUIN, **{f"extra_{i}": i for i in range(50)}}

    response = client.post("/predict/batch", json={"instances": [instance] * 100})

    assert response.status_code == 422
    assert len(response.content) < MAX_REPLY_BYTES
    body = strict_json(response.text)
    assert [d["field"] for d in body["detail"]][:2] == [
        "instances.0.extra_0",
        "instances.0.extra_1",
    ]
    assert body["errors_omitted"] == 100 * 50 - MAX_ERRORS


def test_few_unknown_keys_are_reported_with_every_other_error(client: TestClient) -> None:
    payload = {**PENGUIN, "island": "Mars", "colour": "blue", "size": 3}
    del payload["sex"], payload["body_mass_g"]

    response = client.post("/predict", json=payload)

    assert response.status_code == 422
    body = strict_json(response.text)
    assert {d["field"] for d in body["detail"]} == {"island", "colour", "size", "body_mass_g"}
    assert body["errors_omitted"] == 0


ADVERSARIAL = [
    pytest.param(
        {("k" * 8000) + str(i): i for i in range(25)},
        "/predict",
        id="long-key-names",
    ),
    pytest.param(
        {name: "x" * 40_000 for name in PENGUIN},
        "/predict",
        id="long-strings",
    ),
    pytest.param(
        {**PENGUIN, "island": {f"k{i}": ["y" * 500] * 20 for i in range(20)}},
        "/predict",
        id="wide-nested-input",
    ),
    pytest.param(
        {**PENGUIN, "sex": [[[[[[["z" * 1000] * 5] * 5] * 5]]]]},
        "/predict",
        id="deep-nested-input",
    ),
    pytest.param(
        [{**PENGUIN, "island": "é" * 1000}] * 100,
        "/predict",
        id="array-body",
    ),
    pytest.param(
        {"instances": [{**PENGUIN, "island": "\u0001" * 120}] * 256},
        "/predict/batch",
        id="batch-of-escaped-strings",
    ),
    pytest.param(
        {"instances": [1] * 60_000},
        "/predict/batch",
        id="overlong-batch",
    ),
]


@pytest.mark.parametrize(("payload", "path"), ADVERSARIAL)
def test_every_422_is_small_whatever_the_body(client: TestClient, payload: Any, path: str) -> None:
    body = compact(payload)
    assert len(body) <= BODY_LIMIT

    response = client.post(path, content=body, headers=JSON)

    assert response.status_code == 422
    assert len(response.content) < MAX_REPLY_BYTES, len(response.content)
    answer = strict_json(response.text)
    assert 1 <= len(answer["detail"]) <= MAX_ERRORS
    assert all(len(d["field"]) <= 4 * api.errors.MAX_ECHO_CHARS for d in answer["detail"])


def test_valid_bodies_are_never_parsed_twice(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    parses: list[int] = []
    parse = api.errors.pydantic_core.from_json

    def counting(data: bytes, **options: Any) -> Any:
        parses.append(len(data))
        return parse(data, **options)

    monkeypatch.setattr(api.errors.pydantic_core, "from_json", counting)

    single = client.post("/predict", json=PENGUIN)
    largest = client.post("/predict/batch", json={"instances": [PENGUIN] * 256})
    assert (single.status_code, largest.status_code) == (200, 200)
    assert parses == []

    refused = client.post("/predict", content=unknown_keys_body()[0], headers=JSON)
    assert refused.status_code == 422
    assert len(parses) == 1


@pytest.fixture
def replica(model_dir: Path) -> Iterator[tuple[str, psutil.Process]]:
    """One real replica (uvicorn, httptools) on a free port, stopped after the test."""
    with running_replica(model_dir, API_LOG_LEVEL="warning") as (url, process):
        yield url, psutil.Process(process.pid)


def server_cpu(server: psutil.Process, action: Callable[[], None]) -> float:
    before = server.cpu_times()
    action()
    after = server.cpu_times()
    return (after.user + after.system) - (before.user + before.system)


@pytest.mark.slow
def test_real_replica_answers_unknown_keys_cheaply(replica: tuple[str, psutil.Process]) -> None:
    url, server = replica
    many, keys = unknown_keys_body()
    one = one_key_body(len(many))
    # The server's CPU clock ticks every 10 ms: enough repeats to make the ratio meaningful.
    repeats = 30

    with httpx.Client(base_url=url, headers=JSON, timeout=30) as http:
        first = http.post("/predict", content=many)
        assert first.status_code == 422
        assert len(first.content) < MAX_REPLY_BYTES
        assert first.json()["errors_omitted"] == keys - MAX_ERRORS

        def send(body: bytes) -> Callable[[], None]:
            def action() -> None:
                for _ in range(repeats):
                    assert http.post("/predict", content=body).status_code == 422

            return action

        send(one)()  # warm-up: the first requests of a process cost more
        many_cost = server_cpu(server, send(many))
        one_cost = server_cpu(server, send(one))
        assert http.get("/ready").status_code == 200

    assert many_cost < MAX_COST_RATIO * max(one_cost, 0.01), (many_cost, one_cost)
