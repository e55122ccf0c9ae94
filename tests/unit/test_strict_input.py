"""Every request body's base (api.schemas.StrictInput): JSON's numbers and booleans only."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field, ValidationError

from api.schemas import RoutingIn, SeatCountIn, StrictInput


class Sample(StrictInput):
    count: Annotated[int, Field(ge=0)]
    ratio: float | None = None
    flag: bool = False
    either: int | str = 0
    text: str = ""


@pytest.mark.parametrize(
    "bad",
    [
        {"count": True},
        {"count": "500"},
        {"count": b"5"},
        {"count": 1, "ratio": "0.5"},
        {"count": 1, "ratio": False},
        {"count": 1, "ratio": float("nan")},
        {"count": 1, "ratio": float("inf")},
        {"count": 1, "flag": 1},
        {"count": 1, "flag": "true"},
    ],
)
def test_numbers_and_booleans_are_json_ones_only(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Sample.model_validate(bad)


def test_what_json_means_passes() -> None:
    sample = Sample.model_validate(
        {"count": 5, "ratio": 0.5, "flag": True, "either": "x", "text": "7"}
    )
    assert (sample.count, sample.ratio, sample.flag, sample.either, sample.text) == (
        5,
        0.5,
        True,
        "x",
        "7",
    )
    assert Sample.model_validate({"count": 5, "ratio": 1}).ratio == 1.0


@pytest.mark.parametrize("bad", [True, "500", "5", None, 5.5])
def test_a_seat_count_and_a_penalty_are_strict(bad: object) -> None:
    with pytest.raises(ValidationError):
        SeatCountIn.model_validate({"count": bad})
    if bad is not None:
        with pytest.raises(ValidationError):
            RoutingIn.model_validate({"penalty": bad})
    assert SeatCountIn.model_validate({"count": 500}).count == 500
