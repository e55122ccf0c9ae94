"""What a service refuses with. The API maps each class to one HTTP status (``api.app``);
the CLI and the tests catch them as they are."""

from __future__ import annotations


class ServiceError(Exception):
    """A request the helpline refuses; ``message`` says why, in words for the person asking."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ServiceError):
    """The seat, call, complaint or user named does not exist (or is disabled)."""


class Conflict(ServiceError):
    """Refused because of the current state (seat taken, not logged in, seat in use…)."""


class Invalid(ServiceError):
    """The request is malformed in a way the schema cannot see (bad number, key reused)."""


class InvalidField(Invalid):
    """One field of the request names something that does not exist or does not fit (an
    unknown district code, a category of another department); answered like a schema error,
    with the field's place in the body."""

    def __init__(self, field: str, message: str, *, where: str = "body") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message
        #: Where the field is: ``body``, ``query`` or ``path``.
        self.where = where


class Gone(ServiceError):
    """What was asked for existed and no longer does (a recording past its retention)."""


class TooMany(ServiceError):
    """Refused because a limit was reached (a caller's complaints this month, failed logins);
    ``retry_after``: seconds until asking again may succeed (the ``Retry-After`` header)."""

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Unauthenticated(ServiceError):
    """No valid credentials: wrong password, unknown or expired token, inactive user."""


class Forbidden(ServiceError):
    """Authenticated, but the user's role may not do this."""
