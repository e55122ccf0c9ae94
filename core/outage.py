"""One log line when a repeating failure starts and one when it ends, never one per retry.

A service whose database or Asterisk is away retries every few seconds; a traceback per retry
would bury the log (and the disk) during a 30 s outage. The first failure is logged with its
traceback (it may be a bug, not an outage), the recovery with the count of failed attempts.
"""

from __future__ import annotations

import logging


class Outage:
    def __init__(self, log: logging.Logger, what: str) -> None:
        self.log = log
        self.what = what
        self.failures = 0

    def failed(self, error: BaseException) -> None:
        self.failures += 1
        if self.failures == 1:
            self.log.warning("%s failed (%r); retrying", self.what, error, exc_info=error)

    def ok(self) -> None:
        if self.failures:
            self.log.warning("%s works again after %d failed attempt(s)", self.what, self.failures)
        self.failures = 0
