"""Per-policy retry delays, waited out asynchronously (never by sleeping in a worker).

A policy whose API calls fail (5xx, 429, a webhook down) is retried after 1, 2, 4, ...
seconds up to :data:`MAX_DELAY`, or after the server's ``Retry-After`` when that is
longer (priority and fairness asks for it). Its daemon waits on the event loop, so the
worker threads stay free for the other policies; one success resets the delay.
"""

from __future__ import annotations

from dataclasses import dataclass

BASE_DELAY = 1.0
MAX_DELAY = 60.0


@dataclass
class Backoff:
    """The retry state of one policy."""

    failures: int = 0

    def failed(self, retry_after: float | None = None) -> float:
        """Record a failure; seconds to wait before the next attempt."""
        delay = min(MAX_DELAY, BASE_DELAY * 2.0**self.failures)
        self.failures = min(self.failures + 1, 16)
        if retry_after is not None and retry_after > delay:
            delay = min(retry_after, 10 * MAX_DELAY)
        return delay

    def succeeded(self) -> None:
        self.failures = 0
