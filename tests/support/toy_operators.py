"""Operators built on the mixins the way users build theirs, talking HTTP to ``fake_jobs``."""

from __future__ import annotations

import time
from typing import Any, ClassVar

import requests
from tenacity import wait_none

from airflow.providers.resumable.mixins import (
    Checkpoint,
    JobNotFoundError,
    ResumableJobMixin,
    StatefulOperatorMixin,
    TransientJobError,
    fingerprint_of,
)
from airflow.providers.resumable.version_compat import AirflowException, BaseOperator


class SimulatedCrash(RuntimeError):
    """Stands in for a worker dying (OOM, spot reclaim) in the middle of a try."""


class ToyJobOperator(ResumableJobMixin, BaseOperator):
    """Submits ``spec`` to the fake job system, passing the mixin's idempotency token."""

    template_fields = ("spec",)
    external_id_key = "toy_job"
    # Tests must not sleep through tenacity's backoff.
    status_retry_wait = wait_none()

    def __init__(self, *, base_url: str, spec: dict, crash_in_poll_on_tries: tuple[int, ...] = (), **kwargs):
        super().__init__(**kwargs)
        self.base_url = base_url
        self.spec = spec
        self.crash_in_poll_on_tries = tuple(crash_in_poll_on_tries)

    def execute(self, context):
        return self.execute_resumable(context)

    def submit_job(self, context):
        response = requests.post(
            f"{self.base_url}/jobs", json={"spec": self.spec, "token": self.idempotency_token}, timeout=5
        )
        response.raise_for_status()
        return response.json()["job_id"]

    def get_job_status(self, external_id, context):
        response = requests.get(f"{self.base_url}/jobs/{external_id}", timeout=5)
        if response.status_code == 404:
            raise JobNotFoundError(external_id)
        if response.status_code == 503:
            raise TransientJobError(response.text)
        response.raise_for_status()
        return response.json()["state"]

    def is_job_active(self, status):
        return status in ("PENDING", "RUNNING")

    def is_job_succeeded(self, status):
        return status == "SUCCEEDED"

    def poll_until_complete(self, external_id, context):
        try_number = context["ti"].try_number
        while True:
            status = self.get_job_status(external_id, context)
            if try_number in self.crash_in_poll_on_tries:
                raise SimulatedCrash(f"worker lost while polling {external_id} on try {try_number}")
            if not self.is_job_active(status):
                break
            time.sleep(0.01)
        if not self.is_job_succeeded(status):
            raise AirflowException(f"job {external_id} ended {status}")

    def get_job_result(self, external_id, context):
        return {"job_id": external_id, "token": self.idempotency_token}

    def cancel_job(self, external_id, context):
        requests.post(f"{self.base_url}/jobs/{external_id}/cancel", timeout=5).raise_for_status()

    def job_fingerprint(self, context):
        return fingerprint_of(self.spec)


class FindableToyJobOperator(ToyJobOperator):
    """For systems with no native idempotency: finds a lost submission by its token."""

    def find_job(self, idempotency_token, context):
        response = requests.get(f"{self.base_url}/jobs", params={"token": idempotency_token}, timeout=5)
        response.raise_for_status()
        return response.json()["job_id"]


class ItemsCursor(Checkpoint):
    schema_version: ClassVar[int] = 1
    next_item: int


class ToyBatchOperator(StatefulOperatorMixin, BaseOperator):
    """Copies ``total`` items in batches into one file per batch under ``out_dir``, failing where told."""

    checkpoint_model = ItemsCursor

    def __init__(self, *, out_dir: str, total: int, batch_size: int, fail_on: dict[int, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.out_dir = out_dir
        self.total = total
        self.batch_size = batch_size
        # try number -> batch index at which that try fails
        self.fail_on = {int(k): v for k, v in (fail_on or {}).items()}

    def execute(self, context):
        import json
        import pathlib

        out = pathlib.Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        try_number = context["ti"].try_number
        log_path = out / "tries.jsonl"

        def process(cursor: ItemsCursor, index: int) -> ItemsCursor | None:
            if self.fail_on.get(try_number) == index:
                raise SimulatedCrash(f"try {try_number} lost its worker at batch {index}")
            items = list(range(cursor.next_item, min(cursor.next_item + self.batch_size, self.total)))
            # Deterministic part name: writing batch 3 twice replaces it.
            (out / f"part-{index:05d}.json").write_text(json.dumps(items))
            nxt = cursor.next_item + self.batch_size
            return ItemsCursor(next_item=nxt) if nxt < self.total else None

        start = self.load_checkpoint(context)
        with log_path.open("a") as fh:
            fh.write(json.dumps({"try": try_number, "start_item": start.next_item if start else 0}) + "\n")
        run = self.run_batches(context, process, start=ItemsCursor(next_item=0))
        return {"batches": run.batches_done, "resumed_from": run.resumed_from}


class SleepyBatchOperator(StatefulOperatorMixin, BaseOperator):
    """
    ``batches`` batches of ``batch_seconds`` each (a slow page), at the default checkpoint policy.

    At its last batch it reads the stored checkpoint back, so a test sees what a hard kill there
    would resume from. ``hard_kill_on`` (try number -> batch index) fails that batch without the
    flush a Python error gets, as a SIGKILL leaves no chance to write: the retry starts from the
    last checkpoint the policy wrote during the walk.
    """

    checkpoint_model = ItemsCursor

    def __init__(self, *, batches: int, batch_seconds: float, hard_kill_on: dict[int, int] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.batches = batches
        self.batch_seconds = batch_seconds
        self.hard_kill_on = {int(k): v for k, v in (hard_kill_on or {}).items()}
        self._killed = False

    def execute(self, context):
        try_number = context["ti"].try_number
        seen: dict[str, Any] = {}

        def process(cursor: ItemsCursor, index: int) -> ItemsCursor | None:
            if self.hard_kill_on.get(try_number) == index:
                self._killed = True
                raise SimulatedCrash(f"try {try_number} killed at batch {index}")
            time.sleep(self.batch_seconds)
            if index == self.batches - 1:
                stored = self.state_store(context).get(self.checkpoint_key)
                seen["stored_before_the_end"] = stored and {k: stored[k] for k in ("batches_done", "complete")}
            return ItemsCursor(next_item=cursor.next_item + 1) if index + 1 < self.batches else None

        run = self.run_batches(context, process, start=ItemsCursor(next_item=0))
        return {**seen, "resumed_from": run.resumed_from, "checkpoints_written": run.checkpoints_written}

    def _flush_on_failure(self, context, cursor, index):
        if not self._killed:
            super()._flush_on_failure(context, cursor, index)


def read_parts(out_dir: str) -> list[Any]:
    import json
    import pathlib

    items: list[Any] = []
    for part in sorted(pathlib.Path(out_dir).glob("part-*.json")):
        items.extend(json.loads(part.read_text()))
    return items


def plain_job_operator(mixin: type | None) -> type:
    """
    The subclass contract of a job mixin written as a user writes it, on ``mixin`` (this provider's
    ``ResumableJobMixin`` or ``airflow.sdk.ResumableJobMixin``), so one operator runs on either. It
    submits an empty spec; a subclass with ``sends_token = True`` sends the mixin's idempotency token
    too (None on a mixin that has none). With no mixin, a subclass calls the contract's methods itself.
    Built per mixin rather than mixed in, so that Airflow's operator metaclass wraps its ``__init__``
    and ``execute`` as in any operator.
    """
    bases = (BaseOperator,) if mixin is None else (mixin, BaseOperator)

    class PlainJobOperator(*bases):  # type: ignore[misc]
        sends_token: ClassVar[bool] = False

        def __init__(self, *, base_url: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.base_url = base_url

        def execute(self, context):
            return self.execute_resumable(context)

        def submit_job(self, context):
            body: dict[str, Any] = {"spec": {}}
            if self.sends_token:
                body["token"] = getattr(self, "idempotency_token", None)
            return requests.post(f"{self.base_url}/jobs", json=body, timeout=5).json()["job_id"]

        def get_job_status(self, external_id, context) -> str:
            return requests.get(f"{self.base_url}/jobs/{external_id}", timeout=5).json()["state"]

        def is_job_active(self, status: str) -> bool:
            return status in ("RUNNING", "PENDING")

        def is_job_succeeded(self, status: str) -> bool:
            return status == "SUCCEEDED"

        def poll_until_complete(self, external_id, context) -> None:
            while self.is_job_active(self.get_job_status(external_id, context)):
                time.sleep(0.01)

        def get_job_result(self, external_id, context) -> Any:
            return external_id

    return PlainJobOperator


class UpstreamStyleOperator(plain_job_operator(ResumableJobMixin)):  # type: ignore[misc]
    """
    The operator the docstring of ``airflow.sdk.ResumableJobMixin`` shows, with only the import switched
    to this provider: no idempotency token, no find_job, no fingerprint, no result.
    """

    external_id_key = "my_job_id"

    def get_job_result(self, external_id, context) -> Any:
        return None


class PartsWalkOperator(StatefulOperatorMixin, BaseOperator):
    """
    ``batches`` batches of ``batch_seconds``, each writing ``part-<index>.json`` through ``write_part``
    (a method, so ``fail_on_tries`` can kill the try at its n-th call); returns where the try resumed.
    """

    checkpoint_model = ItemsCursor

    def __init__(self, *, out_dir: str, batches: int, batch_seconds: float, **kwargs):
        super().__init__(**kwargs)
        self.out_dir = out_dir
        self.batches = batches
        self.batch_seconds = batch_seconds

    def write_part(self, index: int, try_number: int) -> None:
        import json
        import pathlib

        time.sleep(self.batch_seconds)
        part = pathlib.Path(self.out_dir) / f"part-{index:05d}.json"
        part.write_text(json.dumps({"index": index, "try": try_number}))

    def execute(self, context):
        try_number = context["ti"].try_number

        def process(cursor: ItemsCursor, index: int) -> ItemsCursor | None:
            self.write_part(index, try_number)
            return ItemsCursor(next_item=cursor.next_item + 1) if index + 1 < self.batches else None

        run = self.run_batches(context, process, start=ItemsCursor(next_item=0))
        return {"resumed_from": run.resumed_from, "checkpoints_written": run.checkpoints_written}
