"""The one latency bucket set of the project.

The app, Traefik (traefik/traefik.yml) and the Locust listener all use these bounds, so
quantiles from every layer are comparable. They reach 60 s, so an overloaded system still
reads below the top bound, and 1.0 s is a bound of its own, so the share of requests under
the SLO is exact rather than interpolated. tests/static/test_buckets.py keeps Traefik's
copy equal to this one.
"""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    10.0,
    20.0,
    30.0,
    60.0,
)

SLO_LATENCY_SECONDS = 1.0

# Model inference is far below HTTP latency: finer bounds at the low end.
INFERENCE_BUCKETS: tuple[float, ...] = (
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
)

BATCH_SIZE_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
