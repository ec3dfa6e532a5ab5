"""Retry-After and the wait built on it (``operators/http_retry.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import requests
from tenacity import RetryCallState, Retrying

from airflow.providers.resumable.operators.http_retry import TransientHttpError, retry_after_seconds, wait_retry_after


class TestRetryAfter:
    def _response(self, value):
        response = requests.Response()
        response.status_code = 429
        response.headers["Retry-After"] = value
        return response

    def test_seconds_and_http_date(self):
        assert retry_after_seconds(self._response("7")) == 7
        later = format_datetime(datetime.now(tz=UTC) + timedelta(seconds=30), usegmt=True)
        assert 25 <= retry_after_seconds(self._response(later)) <= 31
        assert retry_after_seconds(self._response("soon")) is None

    def test_wait_honours_retry_after_up_to_the_cap(self):
        def state_for(value):
            retrying = Retrying()
            state = RetryCallState(retrying, fn=None, args=(), kwargs={})
            state.set_exception((TransientHttpError, TransientHttpError(self._response(value), 0), None))
            return state

        wait = wait_retry_after(fallback=lambda s: 99.0, cap=10)
        assert wait(state_for("3")) == 3
        assert wait(state_for("3600")) == 10
