"""Feature encoding for the compiled forest, read from the fitted pipeline's parameters.

The ONNX graph holds only the forest: feeding it float features costs ~6 us a call, while
the whole pipeline as ONNX (with string tensors for island and sex) costs ~20 us. The
encoding in front of the forest is tiny (median imputation, most-frequent imputation,
one-hot), so it is done here from the values the fitted pipeline learnt. Training checks
that this encoding plus the ONNX forest equals the scikit-learn pipeline on the whole data
set before it writes the artefact.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureEncoding:
    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    categorical: tuple[str, ...]
    fills: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> FeatureEncoding:
        """Read the learnt values out of the pipeline built by api.train.build_pipeline."""
        pre = pipeline.named_steps["pre"]
        num_imputer = pre.named_transformers_["num"]
        cat_steps = pre.named_transformers_["cat"].named_steps
        numeric = tuple(pre.transformers_[0][2])
        categorical = tuple(pre.transformers_[1][2])
        return cls(
            numeric=numeric,
            medians=tuple(float(v) for v in num_imputer.statistics_),
            categorical=categorical,
            fills=tuple(str(v) for v in cat_steps["impute"].statistics_),
            categories=tuple(tuple(str(v) for v in c) for c in cat_steps["onehot"].categories_),
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureEncoding:
        return cls(
            numeric=tuple(data["numeric"]),
            medians=tuple(float(v) for v in data["medians"]),
            categorical=tuple(data["categorical"]),
            fills=tuple(data["fills"]),
            categories=tuple(tuple(c) for c in data["categories"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "medians": list(self.medians),
            "categorical": list(self.categorical),
            "fills": list(self.fills),
            "categories": [list(c) for c in self.categories],
        }

    def encoder(self) -> RowEncoder:
        return RowEncoder(self)


class RowEncoder:
    """Turns feature mappings into the float32 matrix the forest expects.

    The one-hot part of every category combination is computed once, so encoding a row is
    a handful of Python operations.
    """

    def __init__(self, encoding: FeatureEncoding) -> None:
        self._encoding = encoding
        self._onehots: list[dict[str | None, list[float]]] = []
        for fill, categories in zip(encoding.fills, encoding.categories, strict=True):
            table: dict[str | None, list[float]] = {}
            for value in categories:
                table[value] = [1.0 if value == c else 0.0 for c in categories]
            table[None] = table[fill]
            self._onehots.append(table)

    def row(self, features: Mapping[str, Any]) -> list[float]:
        encoding = self._encoding
        values: list[float] = []
        for name, median in zip(encoding.numeric, encoding.medians, strict=True):
            value = features.get(name)
            values.append(median if value is None or _is_nan(value) else float(value))
        for name, table in zip(encoding.categorical, self._onehots, strict=True):
            value = features.get(name)
            if isinstance(value, float) and math.isnan(value):
                value = None
            try:
                values.extend(table[value])
            except KeyError:
                # Unknown categories encode as all zeros, as OneHotEncoder(ignore) does.
                values.extend([0.0] * len(table[None]))
        return values

    def matrix(self, rows: Iterable[Mapping[str, Any]]) -> np.ndarray:
        return np.asarray([self.row(r) for r in rows], dtype=np.float32).reshape(
            -1, self._encoding.width
        )


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
