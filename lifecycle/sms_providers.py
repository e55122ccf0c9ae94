"""Who sends an SMS: the :class:`SmsProvider` protocol, the default :class:`LoggingProvider`
and :class:`HttpSmsProvider` for an SMS gateway.

A provider answers every message with a :class:`SendResult`: ``sent`` (with the gateway's
message id), ``retry`` (a transient failure: 5xx, 408, 429, a timeout, a broken connection)
or ``permanent`` (any other 4xx: the gateway refused this message, sending it again would be
refused again). The outbox id goes with each message as the client reference, so a gateway
that de-duplicates on it does not deliver a re-sent message twice.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from core.config import Settings
from core.domain.phone import CallerNumber
from lifecycle.sms_templates import is_gsm7

log = logging.getLogger(__name__)

#: Status codes of a 4xx that are worth retrying: request timeout, too many requests.
RETRYABLE_4XX = frozenset({408, 425, 429})
#: How much of a gateway's error body goes into ``last_error``.
ERROR_BODY_LIMIT = 200


class SendOutcome(enum.StrEnum):
    SENT = "sent"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class SmsMessage:
    outbox_id: int
    to: CallerNumber
    text: str
    language: str
    dlt_template_id: str

    @property
    def client_reference(self) -> str:
        """The outbox id: the same for every attempt of one SMS."""
        return str(self.outbox_id)


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: SendOutcome
    provider_message_id: str | None = None
    error: str | None = None


class SmsProvider(Protocol):
    name: str

    async def send(self, message: SmsMessage) -> SendResult: ...

    async def aclose(self) -> None: ...


def masked(number: CallerNumber) -> str:
    """The number as a log may show it: only its last four digits."""
    return "*" * (len(number) - 4) + number.last4


class LoggingProvider:
    """Writes one log line per SMS (the number masked) and calls it sent: the default, so a
    demo or a test instance never texts a real citizen."""

    name = "logging"

    async def send(self, message: SmsMessage) -> SendResult:
        log.info(
            "SMS #%d to %s, template %s, %s: %s",
            message.outbox_id,
            masked(message.to),
            message.dlt_template_id,
            message.language,
            message.text,
        )
        return SendResult(SendOutcome.SENT, provider_message_id=f"log-{message.outbox_id}")

    async def aclose(self) -> None:
        return None


class HttpSmsProvider:
    """An SMS gateway over HTTPS: ``POST <url>`` with a JSON body naming the DLT sender,
    entity and template ids (Indian gateways refuse an SMS without them) and the outbox id
    as ``client_ref``; ``Authorization: Bearer <api key>``. A 2xx's JSON ``message_id`` (or
    ``id``) is kept as the provider's message id."""

    name = "http"

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        sender_id: str,
        entity_id: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not url or not sender_id or not entity_id:
            raise ValueError(
                "the http SMS provider needs HELPLINE_SMS_HTTP_URL, HELPLINE_SMS_SENDER_ID "
                "and HELPLINE_SMS_ENTITY_ID"
            )
        self.url = url
        self.sender_id = sender_id
        self.entity_id = entity_id
        self._client = httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def body(self, message: SmsMessage) -> dict[str, Any]:
        return {
            "to": f"91{message.to}",
            "sender": self.sender_id,
            "entity_id": self.entity_id,
            "template_id": message.dlt_template_id,
            "message": message.text,
            "unicode": not is_gsm7(message.text),
            "client_ref": message.client_reference,
        }

    async def send(self, message: SmsMessage) -> SendResult:
        try:
            response = await self._client.post(self.url, json=self.body(message))
        except httpx.TimeoutException as error:
            return SendResult(SendOutcome.RETRY, error=f"timeout: {type(error).__name__}")
        except httpx.TransportError as error:
            return SendResult(SendOutcome.RETRY, error=f"transport: {type(error).__name__}")
        code = response.status_code
        if 200 <= code < 300:
            return SendResult(SendOutcome.SENT, provider_message_id=_message_id(response))
        refused = f"HTTP {code}: {response.text[:ERROR_BODY_LIMIT]}"
        if 400 <= code < 500 and code not in RETRYABLE_4XX:
            return SendResult(SendOutcome.PERMANENT, error=refused)
        return SendResult(SendOutcome.RETRY, error=refused)

    async def aclose(self) -> None:
        await self._client.aclose()

    def __repr__(self) -> str:  # never the API key
        return f"HttpSmsProvider(url={self.url!r}, sender_id={self.sender_id!r})"


def _message_id(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    value = body.get("message_id", body.get("id"))
    return None if value is None else str(value)[:128]


def provider_from_settings(settings: Settings) -> SmsProvider:
    if settings.sms_provider == "http":
        return HttpSmsProvider(
            settings.sms_http_url,
            settings.sms_http_api_key.get_secret_value(),
            sender_id=settings.sms_sender_id,
            entity_id=settings.sms_entity_id,
            timeout=settings.sms_http_timeout,
        )
    return LoggingProvider()
