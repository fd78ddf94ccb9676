"""The Prometheus client of the operator: one instant query at a time, typed failures.

:class:`PrometheusReader` wraps ``prometheus_api_client.PrometheusConnect`` (bearer token,
TLS verification off on request, no retries: the next look is the retry) and raises
:class:`UnreachableError` when Prometheus cannot be reached or timed out and
:class:`QueryError` when one query failed. What is asked is built in
:mod:`tierguard.operator.promql`, what comes back is read by
:mod:`tierguard.operator.promseries`, and :mod:`tierguard.operator.observe` turns both
failures into NoData rather than exceptions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PrometheusReader", "QueryError", "UnreachableError"]


class QueryError(RuntimeError):
    """One PromQL query failed (bad response, timeout)."""


class UnreachableError(QueryError):
    """Prometheus could not be reached at all."""


class PrometheusReader:
    """A thin wrapper over ``prometheus_api_client.PrometheusConnect``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        bearer_token: str | None = None,
        insecure_skip_verify: bool = False,
        at: float | None = None,
    ) -> None:
        import hashlib

        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        # No retries inside one look: the next interval is the retry, and a hung look
        # would delay a rollback elsewhere.
        self.url = url
        self.timeout = timeout
        #: Evaluate queries at this Unix time (None: now); tests pin it.
        self.at = at
        #: Who asks what: readers with equal identity may share query results (a token
        #: may scope what Prometheus returns, so it is part of it, hashed).
        token_hash = hashlib.sha256((bearer_token or "").encode()).hexdigest()[:16]
        self.identity = (url, token_hash, insecure_skip_verify)
        self._prom = PrometheusConnect(
            url=url,
            headers=headers,
            disable_ssl=insecure_skip_verify,
            retry=Retry(total=0),
            timeout=timeout,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            params = {"time": f"{self.at:.3f}"} if self.at is not None else None
            out: list[dict[str, Any]] = self._prom.custom_query(
                promql, params=params, timeout=self.timeout
            )
            return out
        except requests.exceptions.ConnectionError as exc:
            raise UnreachableError(
                f"Prometheus at {self.url} unreachable: {type(exc).__name__}"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise UnreachableError(
                f"Prometheus at {self.url} timed out after {self.timeout:g}s"
            ) from exc
        except (
            PrometheusApiClientException,
            requests.exceptions.RequestException,
            ValueError,
            KeyError,
        ) as exc:
            raise QueryError(f"query failed: {str(exc)[:300]}") from exc
