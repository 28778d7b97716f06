"""Realistic request bodies: penguins from the Palmer data set, missing sex included.

Rows whose measurements are all missing (two in the data set) are left out, since the API
requires measurements; rows with unknown sex stay, sent as null.
"""

from __future__ import annotations

import math
import random
from functools import lru_cache
from typing import Any

NUMERIC = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")


@lru_cache(maxsize=1)
def penguins() -> tuple[dict[str, Any], ...]:
    from palmerpenguins import load_penguins

    rows = []
    for record in load_penguins().to_dict("records"):
        if any(_missing(record[name]) for name in NUMERIC):
            continue
        rows.append(
            {
                "island": record["island"],
                **{name: float(record[name]) for name in NUMERIC},
                "sex": None if _missing(record["sex"]) else record["sex"],
            }
        )
    return tuple(rows)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sample(rng: random.Random | None = None) -> dict[str, Any]:
    return dict((rng or random).choice(penguins()))


def invalid(rng: random.Random | None = None) -> dict[str, Any]:
    """A penguin the API must refuse with 422 (one field made wrong)."""
    generator = rng or random
    body = sample(generator)
    field, value = generator.choice(
        [("island", "Atlantis"), ("bill_length_mm", -1.0), ("sex", "unknown"), ("body_mass_g", 1e9)]
    )
    body[field] = value
    return body
