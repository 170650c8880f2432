"""Riding out a network that drops for a moment: which S3 failures are worth another try, and how long.

Two layers. botocore retries every request itself (standard mode, ``remote.max_attempts``
attempts with a jittered backoff of a fraction of a second): enough for one lost packet
or a throttled request. A *transfer step* (creating, sending or completing a multipart
upload part, a PutObject of a set's object, a GET or its ranged resumption) is retried
again by bdr, after pauses of :data:`TRANSFER_PAUSES` (1, 2, 4, 8 s: about 15 s of outage
survived), because a backup or restore that is minutes in should not be thrown away for a
router's hiccup. Listing, HEAD and delete requests get botocore's retries only, so an
endpoint that is simply wrong or down fails in a second.

Only transient failures are retried: connection refused, reset or timed out, a response
cut short, HTTP 5xx, throttling. A refused credential, a missing bucket or a failed
checksum is an answer, not an outage.
"""

from __future__ import annotations

import http.client
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import botocore.exceptions as boto_errors
import urllib3.exceptions

logger = logging.getLogger(__name__)

T = TypeVar("T")

TRANSFER_PAUSES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
"""Pauses between bdr's tries of one transfer step, after botocore's own tries failed."""
ABORT_PAUSES: tuple[float, ...] = (0.5, 1.5)
"""Pauses between tries of aborting an upload after a failure (then the sweep and lifecycle rule clean it)."""

TRANSIENT_CODES = frozenset({
    "RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "InternalError", "ServiceUnavailable",
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequests", "503", "500",
})

NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    boto_errors.ConnectionError,  # refused, connect timeout, proxy, TLS
    boto_errors.HTTPClientError,  # closed before the response, read timeout, body cut short
    boto_errors.IncompleteReadError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,  # the builtin: reset, aborted, broken pipe
    TimeoutError,
)
"""Failures of the network rather than answers of S3."""


class Retryable(Exception):
    """Raised by an action to ask for another try (e.g. a body that ended early); carries the cause."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same request again could succeed."""
    if isinstance(exc, Retryable):
        return True
    if isinstance(exc, boto_errors.ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return status >= 500 or status == 429 or str(error.get("Code", "")) in TRANSIENT_CODES
    return isinstance(exc, NETWORK_ERRORS)


def is_network(exc: BaseException) -> bool:
    """Whether ``exc`` means the endpoint could not be reached (rather than an answer)."""
    return isinstance(exc, (Retryable, *NETWORK_ERRORS))


def network_reason(exc: BaseException) -> str:
    """A few words for what the network did, for the one-line error."""
    if isinstance(exc, Retryable):
        return exc.reason
    cause = str(getattr(exc, "kwargs", {}).get("error", "") or exc.__cause__ or exc.__context__ or "")
    text = f"{exc} {cause}".lower()
    if isinstance(exc, boto_errors.ConnectTimeoutError):
        return "connecting timed out"
    if isinstance(exc, (boto_errors.ReadTimeoutError, TimeoutError)):
        return "no answer in time (read timeout)"
    if "refused" in text:
        return "connection refused"
    if "reset" in text:
        return "connection reset"
    if isinstance(exc, boto_errors.EndpointConnectionError):
        return "could not connect"
    if isinstance(exc, boto_errors.ConnectionClosedError):
        return "the connection closed before S3 answered"
    if isinstance(exc, (boto_errors.ResponseStreamingError, boto_errors.IncompleteReadError,
                        urllib3.exceptions.ProtocolError, http.client.IncompleteRead)):
        return "the connection broke mid-transfer"
    return f"{type(exc).__name__}: {exc}"


class GaveUp(Exception):
    """What :func:`retrying` raises when the last try failed: the cause, and how hard it tried."""

    def __init__(self, cause: Exception, tries: int, seconds: float) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.tries = tries
        self.seconds = seconds


def retrying(action: Callable[[], T], what: str, pauses: Sequence[float] = TRANSFER_PAUSES,
             sleep: Callable[[float], object] = time.sleep) -> T:
    """``action()``, tried again after each of ``pauses`` while it fails transiently.

    A failure that is not transient propagates as it is, at once; when the tries are used
    up, :class:`GaveUp` carries the last error and how hard it tried (the caller translates).
    Each part of a parallel upload (and each range of a download) is retried on its own, on
    its own thread; ``sleep`` is then its pipeline's ``stopped.wait``, so that a pause ends
    early once another part failed (the action itself then raises, untried).
    """
    started = time.monotonic()
    tries = 0
    while True:
        tries += 1
        try:
            return action()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if tries > len(pauses):
                raise GaveUp(exc, tries, time.monotonic() - started) from exc
            pause = pauses[tries - 1]
            logger.warning("%s failed (%s); trying again in %.1f s (%d of %d)", what, network_reason(exc)
                           if is_network(exc) else exc, pause, tries + 1, len(pauses) + 1)
            sleep(pause)
