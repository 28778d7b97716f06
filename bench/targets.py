"""Minimal servers used as fixed points by the benchmarks (started by bench scripts).

No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at
run time, and `Penguin`, imported inside a factory, would not resolve from a string.
"""

ANSWER = (
    b'{"species":"Adelie","probabilities":{"Adelie":1.0,"Chinstrap":0.0,"Gentoo":0.0},'
    b'"model_version":"fixed"}'
)


async def bare_asgi(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    """The fastest answer Python can give over uvicorn: no framework at all."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(ANSWER)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": ANSWER})


def fixed_app():  # type: ignore[no-untyped-def]
    """FastAPI answering a fixed prediction: the framework's ceiling, written as anyone
    would write it (default settings, a dict returned from an async endpoint)."""
    from fastapi import FastAPI

    app = FastAPI()
    answer = {
        "species": "Adelie",
        "probabilities": {"Adelie": 1.0, "Chinstrap": 0.0, "Gentoo": 0.0},
        "model_version": "fixed",
    }

    @app.post("/predict")
    async def predict() -> dict:
        return answer

    return app


def naive_app():  # type: ignore[no-untyped-def]
    """The per-request scikit-learn server of tutorials (and of the workshop): a pydantic
    body, a one-row DataFrame and predict_proba in a plain `def` endpoint."""
    import os
    from pathlib import Path

    import joblib
    import pandas as pd
    from fastapi import FastAPI

    from api.schemas import FEATURES, Penguin

    pipeline = joblib.load(Path(os.environ.get("API_MODEL_DIR", "model")) / "model.joblib")
    classes = [str(c) for c in pipeline.classes_]
    app = FastAPI()

    @app.post("/predict")
    def predict(penguin: Penguin) -> dict:
        row = penguin.model_dump()
        frame = pd.DataFrame([[row[f] for f in FEATURES]], columns=list(FEATURES))
        probabilities = pipeline.predict_proba(frame)[0]
        best = int(probabilities.argmax())
        return {
            "species": classes[best],
            "probabilities": dict(zip(classes, probabilities.tolist(), strict=True)),
        }

    return app
