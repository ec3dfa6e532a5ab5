"""Per-page retries of ``ResumablePaginatedHttpOperator``: which answers are worth retrying, and how long to wait."""

from __future__ import annotations

import contextlib
import email.utils
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import requests
from tenacity.wait import wait_base

from airflow.providers.resumable.compat.version_compat import AirflowException

if TYPE_CHECKING:
    from tenacity import RetryCallState


class TransientHttpError(AirflowException):
    """A response worth retrying (429, 5xx); carries it so ``Retry-After`` can be honoured."""

    def __init__(self, response: requests.Response, page: int) -> None:
        self.response = response
        super().__init__(f"page {page}: HTTP {response.status_code} {response.reason or ''}".strip())


def _is_transient(exc: BaseException) -> bool:
    return isinstance(
        exc, TransientHttpError | requests.ConnectionError | requests.Timeout | requests.exceptions.ChunkedEncodingError
    )


def retry_after_seconds(response: requests.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP-date), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    with contextlib.suppress(ValueError):
        return max(0.0, float(value))
    with contextlib.suppress(TypeError, ValueError):
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, (when - datetime.now(tz=UTC)).total_seconds())
    return None


class wait_retry_after(wait_base):
    """Wait what the server's ``Retry-After`` asks (up to ``cap``), else what ``fallback`` says."""

    def __init__(self, fallback: wait_base, cap: float) -> None:
        self.fallback = fallback
        self.cap = cap

    def __call__(self, retry_state: RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, TransientHttpError):
            asked = retry_after_seconds(exc.response)
            if asked is not None:
                return min(asked, self.cap)
        return min(self.fallback(retry_state), self.cap)
