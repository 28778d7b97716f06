"""Every bad input gets a 4xx whose JSON names the offending field, never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support import PENGUIN, strict_json


def with_(**changes: Any) -> dict[str, Any]:
    return {**PENGUIN, **changes}


BAD_SINGLE = [
    pytest.param(with_(island="Mars"), "island", id="unknown-island"),
    pytest.param(with_(sex="unknown"), "sex", id="unknown-sex"),
    pytest.param(with_(bill_length_mm=-3), "bill_length_mm", id="negative"),
    pytest.param(with_(body_mass_g=1e9), "body_mass_g", id="absurd"),
    pytest.param(with_(flipper_length_mm="181"), "flipper_length_mm", id="string-for-number"),
    pytest.param(with_(bill_depth_mm=True), "bill_depth_mm", id="bool-for-number"),
    pytest.param(with_(island=3), "island", id="number-for-category"),
    pytest.param(with_(colour="blue"), "colour", id="extra-field"),
    pytest.param({k: v for k, v in PENGUIN.items() if k != "island"}, "island", id="missing"),
    pytest.param([PENGUIN], "body", id="array-not-object"),
]


@pytest.mark.parametrize(("payload", "field"), BAD_SINGLE)
def test_predict_rejects_bad_input_naming_the_field(
    client: TestClient, payload: Any, field: str
) -> None:
    response = client.post("/predict", json=payload)

    assert response.status_code == 422
    body = strict_json(response.text)
    assert body["error"] == "validation_error"
    assert field in [d["field"] for d in body["detail"]]
    assert all(d["msg"] for d in body["detail"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_predict_rejects_non_finite_numbers_with_valid_json(
    client: TestClient, literal: str
) -> None:
    body = json.dumps({**PENGUIN, "bill_length_mm": 0.0})
    raw = body.replace('"bill_length_mm": 0.0', f'"bill_length_mm": {literal}')

    response = client.post("/predict", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 422
    body = strict_json(response.text)
    assert body["detail"][0]["field"] == "bill_length_mm"
    assert isinstance(body["detail"][0]["input"], str)


@pytest.mark.parametrize(
    "payload",
    [
        with_(body_mass_g=10**30),
        with_(sex=[-9223372036854775809]),
        with_(island={"nested": [10**40]}),
    ],
    ids=["huge-number", "huge-integer-in-list", "huge-integer-nested"],
)
def test_huge_integers_are_echoed_as_valid_json(client: TestClient, payload: Any) -> None:
    response = client.post("/predict", json=payload)

    assert response.status_code == 422
    assert strict_json(response.text)["error"] == "validation_error"


def test_predict_rejects_malformed_json(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'{"island": "Dream",', headers={"content-type": "application/json"}
    )

    assert response.status_code == 422
    detail = strict_json(response.text)["detail"]
    assert detail[0]["field"] == "body"
    assert detail[0]["type"] == "json_invalid"


def test_predict_rejects_non_json_content_type(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b"island=Dream", headers={"content-type": "text/plain"}
    )

    assert response.status_code == 415
    assert strict_json(response.text)["error"] == "unsupported_media_type"


def test_body_over_the_byte_limit_gets_413(make_client) -> None:
    client = make_client(max_body_bytes=2048)
    big = {"instances": [PENGUIN] * 40}

    response = client.post("/predict/batch", json=big)

    assert response.status_code == 413
    body = strict_json(response.text)
    assert body["detail"][0]["field"] == "body"
    assert "2048" in body["detail"][0]["msg"]


def test_chunked_body_over_the_limit_gets_413(make_client) -> None:
    client = make_client(max_body_bytes=2048)

    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 413


def test_empty_batch_is_rejected(client: TestClient) -> None:
    response = client.post("/predict/batch", json={"instances": []})

    assert response.status_code == 422
    assert strict_json(response.text)["detail"][0]["field"] == "instances"


def test_oversize_batch_is_rejected(make_client) -> None:
    client = make_client(max_batch_items=5)

    response = client.post("/predict/batch", json={"instances": [PENGUIN] * 6})

    assert response.status_code == 422
    detail = strict_json(response.text)["detail"]
    assert detail[0]["field"] == "instances"
    assert "5" in detail[0]["msg"]


def test_bad_instance_in_batch_is_named_by_index(client: TestClient) -> None:
    response = client.post(
        "/predict/batch", json={"instances": [PENGUIN, with_(island="Atlantis"), PENGUIN]}
    )

    assert response.status_code == 422
    assert strict_json(response.text)["detail"][0]["field"] == "instances.1.island"


def test_unknown_path_and_wrong_method_are_json_4xx(client: TestClient) -> None:
    missing = client.get("/nope")
    wrong = client.get("/predict")

    assert missing.status_code == 404
    assert strict_json(missing.text)["error"] == "not_found"
    assert wrong.status_code == 405
    assert strict_json(wrong.text)["error"] == "method_not_allowed"
