"""Request and response bodies.

Requests are strict: unknown fields are refused, numbers must be JSON numbers (not strings
or booleans), NaN and Infinity are refused, and every measurement has plausible physical
bounds (wider than anything observed in the data set, see GET /metadata for the observed
ranges). `island` and `sex` take exactly the categories the model was trained on; the
service checks at start that the artefact agrees.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Island = Literal["Biscoe", "Dream", "Torgersen"]
Sex = Literal["female", "male"]
Species = Literal["Adelie", "Chinstrap", "Gentoo"]

ISLANDS: tuple[str, ...] = Island.__args__
SEXES: tuple[str, ...] = Sex.__args__
NUMERIC_FEATURES = ("bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
CATEGORICAL_FEATURES = ("island", "sex")
FEATURES = ("island", *NUMERIC_FEATURES, "sex")

_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class Penguin(BaseModel):
    """One penguin's measurements."""

    model_config = ConfigDict(
        **_STRICT,
        json_schema_extra={
            "examples": [
                {
                    "island": "Torgersen",
                    "bill_length_mm": 39.1,
                    "bill_depth_mm": 18.7,
                    "flipper_length_mm": 181,
                    "body_mass_g": 3750,
                    "sex": "male",
                }
            ]
        },
    )

    island: Island
    bill_length_mm: Annotated[float, Field(ge=10, le=100, description="Bill length, mm")]
    bill_depth_mm: Annotated[float, Field(ge=5, le=40, description="Bill depth, mm")]
    flipper_length_mm: Annotated[float, Field(ge=100, le=300, description="Flipper length, mm")]
    body_mass_g: Annotated[float, Field(ge=1000, le=10000, description="Body mass, g")]
    sex: Sex | None = Field(default=None, description="Unknown sex may be null or omitted")


class Prediction(BaseModel):
    species: Species
    probabilities: dict[Species, float]


class PredictResponse(Prediction):
    model_version: str


class BatchResponse(BaseModel):
    predictions: list[Prediction]
    model_version: str


def batch_request_model(max_items: int) -> type[BaseModel]:
    """The batch body, whose size bound comes from settings (API_MAX_BATCH_ITEMS)."""

    class PredictBatchRequest(BaseModel):
        model_config = _STRICT
        instances: Annotated[list[Penguin], Field(min_length=1, max_length=max_items)]

    return PredictBatchRequest


class ErrorDetail(BaseModel):
    field: str = Field(description="Dotted path of the offending field, or `body`")
    loc: list[str | int]
    msg: str
    type: str
    input: object | None = None


class ErrorResponse(BaseModel):
    error: str
    detail: list[ErrorDetail] | str
    errors_omitted: int = Field(
        default=0,
        ge=0,
        description="422 only: errors not listed in `detail`, which holds at most 20",
    )
