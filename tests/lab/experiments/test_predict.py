"""The capacity model fitted to knees, and the smallest deployment it predicts."""

from __future__ import annotations

import pytest

from lab.core import ResourceError
from lab.experiments import predict
from tests.lab.experiments.synthetic import config, step


def test_three_knees_get_the_proportional_model_and_say_why() -> None:
    configs = [
        config("r1-c0.5-m512m", 1, 0.5, 25),
        config("r1-c1.0-m1g", 1, 1.0, 75),
        config("r2-c0.5-m512m", 2, 0.5, 75),
    ]

    model = predict.fit(configs)

    assert model is not None and model.model == "proportional"
    # Least squares through the origin: sum(knee * N) / sum(N^2) = (12.5+75+75) / 2.25.
    assert model.params["rps_per_core"] == pytest.approx(162.5 / 2.25)
    assert "need at least 4" in model.why


def test_usl_is_fitted_when_four_cpu_totals_support_it() -> None:
    # Knees from X(N) = 60 N / (1 + 0.1 (N - 1)), at 0.5, 1, 2 and 4 CPU.
    def usl(n: float) -> float:
        return 60 * n / (1 + 0.1 * (n - 1))

    configs = [
        config(f"r{r}-c{c}", r, c, None) for r, c in ((1, 0.5), (1, 1.0), (2, 1.0), (4, 1.0))
    ]
    for c in configs:
        knee = usl(c.replicas * (c.cpus or 0))
        c.steps = [step(c.label, knee, True), step(c.label, knee * 1.1, False)]
        c.knee_rps, c.knee_upper_rps = knee, knee * 1.1

    model = predict.fit(configs)

    assert model is not None and model.model == "usl"
    assert model.params["sigma"] == pytest.approx(0.1, abs=0.01)
    assert model.predict(3.0) == pytest.approx(usl(3.0), rel=0.01)


def test_lower_bounds_and_unlimited_deployments_stay_out_of_the_fit() -> None:
    bounded = config("r1-c1.0-m1g", 1, 1.0, 75)
    unbounded = config("r2-c1.0-m1g", 2, 1.0, 150)  # never failed: a lower bound

    model = predict.fit([bounded, unbounded])

    assert model is not None and [p.label for p in model.points] == ["r1-c1.0-m1g"]
    assert model.left_out == ["r2-c1.0-m1g: knee >= 100 is only a lower bound"]


def test_the_smallest_deployment_uses_measured_replica_sizes() -> None:
    model = predict.fit([config("r1-c0.5-m512m", 1, 0.5, 25), config("r1-c1.0-m1g", 1, 1.0, 75)])
    assert model is not None

    choice = predict.smallest(model, 100)

    assert choice.deployment.label in ("r2-c1.0-m1g", "r3-c0.5-m512m", "r4-c0.5-m512m")
    assert choice.predicted_knee >= 100
    assert choice.cores == min(
        r * c for r in range(1, 5) for c in (0.5, 1.0) if model.predict(r * c) >= 100
    )
    with pytest.raises(ResourceError, match="no deployment of up to 4 replicas"):
        predict.smallest(model, 10_000)


def test_probe_rates_bracket_the_predicted_knee() -> None:
    assert predict.probe_rates(50, 60.4) == [50, 60, 75, 96]
    assert predict.probe_rates(50, 50) == [50, 62, 80]
