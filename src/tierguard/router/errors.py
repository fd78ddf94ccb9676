"""The router's exception taxonomy and its OpenAI-shaped rendering.

Every failure a client can see is one of these classes; ONE middleware in ``app.py``
turns them (and aiohttp's own HTTP exceptions, and anything unexpected) into
``{"error": {"message", "type", "param", "code"}}`` with the right status, so SDKs that
parse OpenAI errors (``openai.BadRequestError`` ...) behave exactly as against OpenAI.
Pure: no aiohttp import, so the mapping is unit-tested on its own.
"""

from __future__ import annotations

from typing import Any, ClassVar

INVALID_REQUEST = "invalid_request_error"
AUTHENTICATION = "authentication_error"
NOT_FOUND = "not_found_error"
SERVER_ERROR = "server_error"
UPSTREAM_ERROR = "upstream_error"
TIMEOUT_ERROR = "timeout_error"
UNAVAILABLE = "service_unavailable"
RATE_LIMIT = "rate_limit_error"


class RouterError(Exception):
    """Base of every error the router returns to a client.

    ``code`` is low-cardinality and doubles as the ``reason`` label of
    ``tierguard_invalid_requests_total``.
    """

    status: ClassVar[int] = 500
    type: ClassVar[str] = SERVER_ERROR
    default_code: ClassVar[str] = "internal_error"
    #: a 4xx the client caused (counted in ``tierguard_invalid_requests_total``)
    client_fault: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}  # response headers (e.g. Retry-After)

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


class InvalidRequestError(RouterError):
    """The request is malformed: bad JSON, a missing or mistyped field, empty messages."""

    status = 400
    type = INVALID_REQUEST
    default_code = "invalid_request"


class AuthenticationError(RouterError):
    """The router requires a client API key and none (or a wrong one) was given."""

    status = 401
    type = AUTHENTICATION
    default_code = "invalid_api_key"


class ModelNotFoundError(RouterError):
    """The client asked for a model the policy does not know."""

    status = 404
    type = INVALID_REQUEST
    default_code = "model_not_found"


class NotFoundError(RouterError):
    status = 404
    type = NOT_FOUND
    default_code = "not_found"


class MethodNotAllowedError(RouterError):
    status = 405
    type = INVALID_REQUEST
    default_code = "method_not_allowed"


class PayloadTooLargeError(RouterError):
    """The body is over ``server.maxBodyBytes``."""

    status = 413
    type = INVALID_REQUEST
    default_code = "request_too_large"


class UnsupportedMediaTypeError(RouterError):
    status = 415
    type = INVALID_REQUEST
    default_code = "unsupported_media_type"


class FeedbackRejectedError(RouterError):
    """A feedback id is forged, expired, malformed or from another policy."""

    status = 400
    type = INVALID_REQUEST
    default_code = "invalid_feedback_id"
    client_fault = False  # counted in tierguard_feedback_rejected_total instead


class NotReadyError(RouterError):
    """Config or classifier not loaded yet."""

    status = 503
    type = UNAVAILABLE
    default_code = "not_ready"


class UpstreamFailedError(RouterError):
    """Every model of the fallback chain failed; the message lists each attempt's reason."""

    status = 502
    type = UPSTREAM_ERROR
    default_code = "upstream_failed"


class UpstreamRejectedError(RouterError):
    """The upstream refused the request itself (4xx other than 429): the client's
    parameters are probably wrong, so no other model is tried; the upstream's status and
    message are passed on."""

    type = INVALID_REQUEST
    default_code = "upstream_rejected"
    client_fault = False  # counted as the upstream's error (tierguard_upstream_errors_total)

    def __init__(self, status: int, message: str, *, param: str | None = None):
        super().__init__(message, param=param)
        self.status_code = status


class RateLimitedError(RouterError):
    """The last model of the chain answered 429: passed on with its ``Retry-After`` (and
    ``retry-after-ms``) so clients and SDKs back off as they would against OpenAI."""

    status = 429
    type = RATE_LIMIT
    default_code = "rate_limit_exceeded"
    client_fault = False


class DeadlineExceededError(RouterError):
    """The total request deadline passed before any model answered."""

    status = 504
    type = TIMEOUT_ERROR
    default_code = "deadline_exceeded"


def http_status(err: RouterError) -> int:
    """The HTTP status for an error (instance-level for passed-on upstream statuses)."""
    if isinstance(err, UpstreamRejectedError):
        return err.status_code
    return err.status


def error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error envelope."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


_STATUS_CLASSES: dict[int, type[RouterError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    405: MethodNotAllowedError,
    413: PayloadTooLargeError,
    415: UnsupportedMediaTypeError,
    503: NotReadyError,
}


def from_http_status(status: int, reason: str) -> RouterError:
    """Map an HTTP status raised by the web framework (e.g. its 404 for an unknown path,
    its 413 for an oversized body) to the taxonomy."""
    cls = _STATUS_CLASSES.get(status)
    if cls is not None:
        return cls(reason)
    if 400 <= status < 500:
        return InvalidRequestError(reason, code=f"http_{status}")
    return RouterError(reason)
