"""SMS providers without a network: the HTTP gateway's outcomes through httpx.MockTransport
(2xx sent, 4xx permanent, 408/429/5xx and timeouts retried), what is sent (DLT ids, client
reference), the API key kept out of errors and reprs; the logging provider's masked number;
the retry backoff schedule."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from core.config import Settings
from core.domain.phone import CallerNumber
from lifecycle.notifications import RetryPolicy
from lifecycle.sms_providers import (
    HttpSmsProvider,
    LoggingProvider,
    SendOutcome,
    SmsMessage,
    provider_from_settings,
)

API_KEY = "sk-very-secret-key"
MESSAGE = SmsMessage(
    outbox_id=42,
    to=CallerNumber("9876543210"),
    text="शिकायत सं. 1000000014 दर्ज हुई।",
    language="hi",
    dlt_template_id="1007000000000000101",
)


def gateway(handler: Callable[[httpx.Request], httpx.Response]) -> HttpSmsProvider:
    return HttpSmsProvider(
        "https://sms.example/send",
        API_KEY,
        sender_id="UPCMHL",
        entity_id="1001000000000000001",
        transport=httpx.MockTransport(handler),
    )


async def test_a_2xx_is_sent_with_everything_dlt_needs() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"message_id": "gw-77"})

    provider = gateway(handler)
    result = await provider.send(MESSAGE)
    await provider.aclose()
    assert result.outcome is SendOutcome.SENT
    assert result.provider_message_id == "gw-77"
    (request,) = seen
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    body = json.loads(request.content)
    assert body == {
        "to": "919876543210",
        "sender": "UPCMHL",
        "entity_id": "1001000000000000001",
        "template_id": "1007000000000000101",
        "message": MESSAGE.text,
        "unicode": True,
        "client_ref": "42",
    }


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, SendOutcome.SENT),
        (400, SendOutcome.PERMANENT),
        (401, SendOutcome.PERMANENT),
        (422, SendOutcome.PERMANENT),
        (408, SendOutcome.RETRY),
        (429, SendOutcome.RETRY),
        (500, SendOutcome.RETRY),
        (503, SendOutcome.RETRY),
    ],
)
async def test_http_status_maps_to_an_outcome(status: int, outcome: SendOutcome) -> None:
    provider = gateway(lambda _request: httpx.Response(status, text="gateway says no"))
    result = await provider.send(MESSAGE)
    await provider.aclose()
    assert result.outcome is outcome
    if outcome is not SendOutcome.SENT:
        assert result.error is not None
        assert str(status) in result.error
        assert API_KEY not in result.error


@pytest.mark.parametrize(
    "error", [httpx.ReadTimeout("slow"), httpx.ConnectError("refused"), httpx.ConnectTimeout("x")]
)
async def test_timeouts_and_broken_connections_are_retried(error: httpx.TransportError) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error

    provider = gateway(handler)
    result = await provider.send(MESSAGE)
    await provider.aclose()
    assert result.outcome is SendOutcome.RETRY
    assert result.error is not None


async def test_plain_english_goes_as_gsm7_and_anything_else_as_unicode() -> None:
    bodies: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200)

    provider = gateway(handler)
    english = SmsMessage(1, MESSAGE.to, "Complaint no. 1000000014 resolved.", "en", "1" * 19)
    named = SmsMessage(2, MESSAGE.to, "Sent to SHO Hazratganj – Lucknow", "en", "1" * 19)
    for message in (english, named, MESSAGE):
        await provider.send(message)
    await provider.aclose()
    assert [b["unicode"] for b in bodies] == [False, True, True]


async def test_a_2xx_without_a_json_id_is_still_sent() -> None:
    provider = gateway(lambda _request: httpx.Response(200, text="OK"))
    result = await provider.send(MESSAGE)
    await provider.aclose()
    assert result.outcome is SendOutcome.SENT
    assert result.provider_message_id is None


def test_the_api_key_is_not_in_settings_or_provider_reprs() -> None:
    settings = Settings(
        sms_provider="http",
        sms_http_url="https://sms.example/send",
        sms_http_api_key=API_KEY,  # type: ignore[arg-type]
        sms_sender_id="UPCMHL",
        sms_entity_id="1001000000000000001",
    )
    provider = provider_from_settings(settings)
    assert isinstance(provider, HttpSmsProvider)
    assert API_KEY not in repr(settings)
    assert API_KEY not in repr(provider)
    with pytest.raises(ValueError, match="SENDER_ID"):
        provider_from_settings(Settings(sms_provider="http", sms_http_url="https://x"))
    assert isinstance(provider_from_settings(Settings()), LoggingProvider)


async def test_the_logging_provider_masks_all_but_the_last_four_digits(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="lifecycle.sms_providers"):
        result = await LoggingProvider().send(MESSAGE)
    assert result.outcome is SendOutcome.SENT
    (line,) = [r.getMessage() for r in caplog.records]
    assert "******3210" in line
    assert "9876543210" not in line
    assert "1000000014" in line


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    policy = RetryPolicy(base=timedelta(seconds=30), cap=timedelta(minutes=10))
    assert [policy.backoff(n).total_seconds() for n in range(1, 8)] == [
        30,
        60,
        120,
        240,
        480,
        600,
        600,
    ]
    assert policy.backoff(10_000) == timedelta(minutes=10)
    with pytest.raises(ValueError, match="attempt"):
        policy.backoff(0)
