"""The logs' privacy net (core.logs): every spelling of an Indian number masked, complaint
numbers and other digits left alone, on every handler the processes set up."""

from __future__ import annotations

import io
import logging
import logging.config

import pytest

from core import logs


@pytest.mark.parametrize(
    "text",
    [
        "9415012345",
        "+919415012345",
        "919415012345",
        "09415012345",
        "0919415012345",
        "+91 94150 12345",
        "94150-12345",
        "tel:+91-9415012345",
        "Key (caller_number)=(9415012345) already exists",
        "05222234567",
        "caller_9415012345",
        "number=9415012345;",
    ],
)
def test_every_spelling_of_a_number_is_masked(text: str) -> None:
    masked = logs.mask_numbers(text)
    assert "XXXXX" in masked, masked
    assert not any(part in masked for part in ("4150", "2234")), masked


@pytest.mark.parametrize(
    "text",
    [
        "complaint 1000000009 escalated",  # a complaint number is no phone number
        "uniqueid 1733462400.123456",
        "outbox #123456789012",
        "at 2026-12-06 05:14:14",
        # An attempt id's uuid hex with ten digits in a row (fresh-clone CI, 12-06).
        "attempt dialer-dc46badc5fd54806ab3808826164aebf: hung_up",
    ],
)
def test_what_is_no_phone_number_stays(text: str) -> None:
    assert logs.mask_numbers(text) == text


def test_masked_number() -> None:
    assert logs.masked_number("9415012345") == "94XXXXX345"
    assert logs.masked_number(None) == "-"


def test_the_filter_masks_message_arguments_and_exceptions() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(logs.PrivacyFilter())
    logger = logging.getLogger("tests.logs.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("call from %s", "+91 94150 12345")
        try:
            raise ValueError("duplicate 9415012345")
        except ValueError:
            logger.exception("failed for %s", "09415012345")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert "94XXXXX345" in text
    assert "9415012345" not in text and "94150 12345" not in text


def test_configure_and_uvicorns_handlers_carry_the_filter() -> None:
    config = logs.uvicorn_log_config()
    assert all("privacy" in h["filters"] for h in config["handlers"].values())
    logging.config.dictConfig(config)
    for name in ("uvicorn", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            assert any(isinstance(f, logs.PrivacyFilter) for f in handler.filters)
