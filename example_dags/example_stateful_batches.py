"""
Example DAG: a batch copy that resumes where it failed instead of starting again.

``CopyRecordsOperator`` copies 200 records in batches of 10 into one JSON-lines part per batch. The
first try hits a simulated outage of the source at batch 8; Airflow retries the task and the retry
starts at batch 8, because ``StatefulOperatorMixin.run_batches`` stored the cursor of the last batch
whose part was written. Parts have deterministic names (``part-00008.jsonl``), so a batch done twice
replaces its part and no record is duplicated.

Runs as is with ``airflow dags test example_stateful_batches`` (``make demo`` does that on a fresh
SQLite Airflow): the task state lives in Airflow 3.3's ``task_state_store``, or in an Airflow Variable
on older Airflow. Output goes to ``$RESUMABLE_DEMO_OUTPUT`` (default: a folder in the temp dir).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

from airflow.providers.resumable.mixins import Checkpoint, StatefulOperatorMixin
from airflow.providers.resumable.version_compat import AIRFLOW_V_3_0_PLUS, AirflowException, BaseOperator

if AIRFLOW_V_3_0_PLUS:
    from airflow.sdk import DAG
else:
    from airflow.models.dag import DAG


OUTPUT = os.environ.get("RESUMABLE_DEMO_OUTPUT", str(Path(tempfile.gettempdir()) / "resumable-demo"))


class RecordCursor(Checkpoint):
    """Where the next batch starts in the source."""

    schema_version: ClassVar[int] = 1
    offset: int


class CopyRecordsOperator(StatefulOperatorMixin, BaseOperator):
    """
    Copy ``total_records`` synthetic records in batches, one part file per batch.

    :param output_dir: folder for the parts (templated); a run writes to ``<output_dir>/<run_id>``.
    :param total_records: records in the source.
    :param batch_size: records per batch.
    :param outage: ``{try_number: batch_index}``: the source fails at that batch on that try.
    """

    template_fields = ("output_dir",)
    checkpoint_model = RecordCursor

    def __init__(
        self,
        *,
        output_dir: str,
        total_records: int,
        batch_size: int,
        outage: dict[int, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if total_records < 0:
            raise ValueError(f"total_records must be >= 0, got {total_records}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.output_dir = output_dir
        self.total_records = total_records
        self.batch_size = batch_size
        self.outage = {int(k): int(v) for k, v in (outage or {}).items()}

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        out = Path(self.output_dir) / ti.run_id.replace(":", "_").replace("+", "_")
        out.mkdir(parents=True, exist_ok=True)
        first_batch: list[int] = []

        def process(cursor: RecordCursor, index: int) -> RecordCursor | None:
            if not first_batch:
                first_batch.append(index)
                self._note_try(out, ti.try_number, index)
            if self.outage.get(ti.try_number) == index:
                raise AirflowException(f"Simulated outage of the source at batch {index} on try {ti.try_number}")
            end = min(cursor.offset + self.batch_size, self.total_records)
            records = [{"id": i, "value": i * i} for i in range(cursor.offset, end)]
            self._write_part(out, index, records)
            return RecordCursor(offset=end) if end < self.total_records else None

        run = self.run_batches(context, process, start=RecordCursor(offset=0))
        return {"output": str(out), "batches": run.batches_done, "resumed_from_batch": run.resumed_from}

    @staticmethod
    def _write_part(out: Path, index: int, records: list[dict[str, Any]]) -> None:
        # Write then rename: a crash mid-write never leaves half a part under the final name.
        part = out / f"part-{index:05d}.jsonl"
        tmp = part.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
        os.replace(tmp, part)

    @staticmethod
    def _note_try(out: Path, try_number: int, batch: int) -> None:
        with (out / "tries.jsonl").open("a") as fh:
            fh.write(json.dumps({"try": try_number, "started_at_batch": batch}) + "\n")


with DAG(
    dag_id="example_stateful_batches",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["example", "resumable"],
    doc_md=__doc__,
) as dag:
    CopyRecordsOperator(
        task_id="copy_records",
        output_dir=OUTPUT,
        total_records=200,
        batch_size=10,
        outage={1: 8},
        checkpoint_every=5,
        retries=2,
        retry_delay=timedelta(seconds=1),
    )


if __name__ == "__main__":
    dag.test()
