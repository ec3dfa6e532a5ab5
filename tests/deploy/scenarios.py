"""
The deployment suite's scenarios: which operator family, which moment it is killed at, how many
instances. Imported by the DAG files (in the task processes) and by the driver, so both agree on
every name without passing anything but the scenario's dag_id around.

A scenario is one DAG with one task (``work``; mapped over ``instances`` when more than one), named
``deploy_<family>_<moment>[_<variant>]``. The fake services recognise a scenario by that name in
what the task sends them (the Databricks ``run_name``, the toy job's spec, the HTTP ``X-Client``
header, the batch sink's request, the EMR Serverless application), and the fault plan says what
they do to the task process at which event, and to the scenario's jobs: fail the first one, or keep
it running until a person's clear has started the next try.
"""

from __future__ import annotations

from dataclasses import dataclass

JOB_FAMILIES = ("toy", "databricks", "emr")
WALK_FAMILIES = ("http", "batches")
#: ``@task.resumable`` functions: a checkpointed loop (``handle.iterate``) writing to the batch sink, and
#: a job (``handle.job``) on the toy job service. They run on the runners the mixins run on, which the
#: families above already put through every moment, so these few moments cover what is TaskFlow's
#: own (the handle, the decorator's try, the lifecycle of its state) and keep the legs short.
TASKFLOW_LOOP = "taskflow"
TASKFLOW_JOB = "taskflow_job"
TASKFLOW_MOMENTS = {
    TASKFLOW_LOOP: ("mid_walk", "clear_after_success", "mapped"),
    TASKFLOW_JOB: ("accepted", "mid_poll"),
}
FAMILIES = JOB_FAMILIES + WALK_FAMILIES + tuple(TASKFLOW_MOMENTS)

#: Moment -> (service event the fault fires on, which occurrence of it, what it does).
#: ``kill``: SIGKILL the task process; ``kill_worker``: the task process and its parent (Airflow 3's
#: supervisor, Airflow 2's ``airflow tasks run`` job), so only the heartbeat timeout frees the task;
#: ``mark_failed``: a person marks the running task failed (REST API); ``none``: no fault.
#: The ``clear_*`` moments end with a person's clear (``CLEAR_ON``).
JOB_MOMENTS = {
    "before_submit": ("start", 1, "kill"),
    "accepted": ("submit", 1, "kill"),
    "mid_poll": ("poll", 2, "kill"),
    "worker_lost": ("poll", 2, "kill_worker"),
    "mark_failed": ("poll", 2, "mark_failed"),
    "clear_after_success": ("", 0, "none"),
    # Marked failed mid-poll, its job still running (cancel_on_kill=False), then cleared: the next try
    # must reattach. The service keeps the job running until the marked try's process is gone and a
    # later try has started (services.Faults.holding), so the clear always finds it running.
    "clear_after_mark": ("poll", 2, "mark_failed"),
    # The job fails, the task fails (no retries), then a person clears it: one new submission.
    "clear_after_job_failed": ("", 0, "none"),
    "mapped": ("poll", 2, "kill"),
}
#: Databricks only (the family whose operators repair a failed run): a multi-task run whose last task
#: fails once (``REPAIR_TASKS``, ``Scenario.failing_task``) fails try 1; try 2 decides to repair it
#: (``jobs/runs/repair``) and is SIGKILLed: ``repair_accepted`` inside the repair request, the repair
#: done and its answer unsent; ``repaired_mid_poll`` at its third status read of the repaired run. Try 3
#: must poll that repair, not repeat it.
REPAIR_MOMENTS = {
    "repair_accepted": ("repair", 1, "kill"),
    "repaired_mid_poll": ("repaired_poll", 3, "kill"),
}
#: The tasks of a repair scenario's run, in order: each depends on the one before; the last fails once.
REPAIR_TASKS = ("extract", "transform", "load")
#: What the try that repairs logs (the run's status after try 1 failed on it).
REPAIR_DECISION = r"Resuming job \d+ \(TERMINATED:FAILED\)"
#: Moment -> the DAG run state at which a person clears the task (the REST API's clearTaskInstances
#: with the UI's default body on Airflow 3, so 3.4 discards the task's state; the CLI on 2.11).
CLEAR_ON = {"clear_after_success": "success", "clear_after_mark": "failed", "clear_after_job_failed": "failed"}
#: Moment -> (jobs each task instance must end with, a regex the recovering try's one decision line
#: must match). A moment not listed: one job per task instance, any one decision line.
JOB_PROMISES = {
    # A fresh job in the new life; the reason differs (3.4's clear discarded the finished marker).
    "clear_after_success": (2, r"Submitting job \(submission \d+, token rsm-"),
    "clear_after_mark": (1, r"Reattaching to job"),
    # A new token, and the try knew why: the recorded job failed (on 3.4 read from the ledger).
    "clear_after_job_failed": (2, r"Submitting job \(submission 2, token rsm-\w+\): job .* ended without success"),
    # The killed try's repair is polled, never repeated: the run is still running after it (the
    # fake runs a repaired run on its status reads), or, had it ended, the repair is found first.
    "repair_accepted": (1, r"Reattaching to job|Found the resume of job"),
    "repaired_mid_poll": (1, r"Reattaching to job"),
}
#: Walks: pages (HTTP) or batches fetched; the kill comes well after the first time-based checkpoint
#: could have been written, so the redo measures the policy, not the start-up.
WALK_KILL_AT = 300
WALK_MOMENTS = {
    "before_first_page": ("start", 1, "kill"),
    "mid_walk": ("page", WALK_KILL_AT, "kill"),
    "worker_lost": ("page", WALK_KILL_AT, "kill_worker"),
    "mark_failed": ("page", 40, "mark_failed"),
    "clear_after_success": ("", 0, "none"),
    "mapped": ("page", 40, "kill"),
}
#: Checkpoint policies a mid-walk kill is measured under: the operator's default and an explicit
#: ``checkpoint_interval=5`` (the 0.1 default), side by side in the redo table.
POLICIES = {"default": {}, "interval5": {"checkpoint_interval": 5}}

WALK_PAGES = 400  # pages (HTTP) or batches per walk
PAGE_SIZE = 5  # records per page / batch
PAGE_LATENCY = 0.02  # seconds the service takes per page: the work a redo repeats

#: The longest a person's mark may take to land. On Airflow 2.11 the suite marks through a Python
#: process that imports Airflow (over 120 s alone at a load average of 20 on 2 cores), then waits
#: for SQLite's lock; on Airflow 3 it is a REST call tried again on each 500.
MARK_SECONDS = 300

#: How long a task's request to the fake services waits for its answer. The services hold the answer
#: to the poll or page a mark lands on until the mark has landed (services.py), so the task's client
#: must outwait the mark: with 60 s, a batch under load timed out before a 2.11 mark landed, the try
#: failed on its own, raced the mark, and Airflow kept its up_for_retry, so a second try ran.
HELD_ANSWER_SECONDS = MARK_SECONDS + 60

#: The default checkpoint policy's bound on the work a hard kill redoes (docs/benchmarks.md).
REDO_GOAL_SECONDS = 1.0
MAPPED_INSTANCES = 3
#: The task instance the mapped scenarios kill.
MAPPED_VICTIM = 1


@dataclass(frozen=True)
class Scenario:
    family: str
    moment: str
    variant: str = "default"

    @property
    def dag_id(self) -> str:
        suffix = "" if self.variant == "default" else f"_{self.variant}"
        return f"deploy_{self.family}_{self.moment}{suffix}"

    @property
    def walk(self) -> bool:
        return self.family in WALK_FAMILIES or self.family == TASKFLOW_LOOP

    @property
    def instances(self) -> int:
        return MAPPED_INSTANCES if self.moment == "mapped" else 1

    @property
    def fault(self) -> tuple[str, int, str]:
        if self.walk:
            return WALK_MOMENTS[self.moment]
        return REPAIR_MOMENTS[self.moment] if self.repairs_run else JOB_MOMENTS[self.moment]

    @property
    def repairs_run(self) -> bool:
        """A repair scenario: its run fails once and a later try repairs it (``REPAIR_MOMENTS``)."""
        return self.moment in REPAIR_MOMENTS

    @property
    def task_keys(self) -> list[str]:
        """The Databricks task keys of a repair scenario's run (unique per scenario: the fake fails by key)."""
        return [f"{self.moment}_{task}" for task in REPAIR_TASKS] if self.repairs_run else []

    @property
    def failing_task(self) -> str | None:
        """The task key whose first attempt the fake fails (``fail_task_once``)."""
        return self.task_keys[-1] if self.repairs_run else None

    @property
    def expected_repairs(self) -> int:
        """Repairs of each run: one for a repair scenario (never repeated), none elsewhere."""
        return 1 if self.repairs_run else 0

    @property
    def expected_executed(self) -> list[str] | None:
        """Task attempts of the victim's run, in order: every task once, then only the failed one again."""
        return [*self.task_keys, self.task_keys[-1]] if self.repairs_run else None

    @property
    def repairing_decision(self) -> str | None:
        """A regex the repairing try's (the killed one's) one decision line must match."""
        return REPAIR_DECISION if self.repairs_run else None

    @property
    def victim(self) -> int:
        """map_index of the task instance the fault targets (-1 when not mapped)."""
        return MAPPED_VICTIM if self.instances > 1 else -1

    @property
    def checkpoint_kwargs(self) -> dict[str, float]:
        return dict(POLICIES.get(self.variant, {}))

    @property
    def clear_on(self) -> str | None:
        """The DAG run state at which a person clears the task, or None when nobody does."""
        return CLEAR_ON.get(self.moment)

    @property
    def expected_tries(self) -> int:
        """
        Tries of the victim: one more after a kill or a clear; one after a mark (no retry) or no fault;
        a repair scenario's failed try, its killed repairing try and the try that recovers.
        """
        if self.repairs_run:
            return 3
        return 2 if self.fault[2] in ("kill", "kill_worker") or self.clear_on else 1

    @property
    def expected_state(self) -> str:
        return "failed" if self.fault[2] == "mark_failed" and not self.clear_on else "success"

    @property
    def generations(self) -> int:
        """Lives of the task instance: a clear after success starts a new one."""
        return 2 if self.moment == "clear_after_success" else 1

    @property
    def jobs_per_instance(self) -> int:
        """External jobs each task instance of a job family must end with (one per life, unless a job failed)."""
        return JOB_PROMISES.get(self.moment, (1, ""))[0]

    @property
    def expected_decision(self) -> str | None:
        """A regex the recovering try's one decision line must match (None: any one line)."""
        return JOB_PROMISES[self.moment][1] if not self.walk and self.moment in JOB_PROMISES else None

    @property
    def failed_jobs(self) -> int:
        """How many of the victim's first jobs the service fails."""
        return 1 if self.moment == "clear_after_job_failed" else 0

    @property
    def holds_job(self) -> bool:
        """
        The service keeps the victim's job running until the marked try is gone (and, for a clear after
        the mark, a later try started): a mark that reaches a loaded worker late must still find the job
        running, as it would a long job, or the scenario would judge the machine's speed, not the kill.
        """
        return self.moment in ("clear_after_mark", "mark_failed")

    @property
    def retries(self) -> int | None:
        """The DAG's retries when the scenario needs its own (None: the leg's)."""
        if self.repairs_run:
            return 3  # two are needed (the job's failure, the kill): one spare, as the kill scenarios have
        return 0 if self.moment == "clear_after_job_failed" else None

    @property
    def cancel_on_kill(self) -> bool:
        """The toy's mark_failed cancels its job; every other scenario keeps the operators' default (False)."""
        return self.family == "toy" and self.moment == "mark_failed"


def all_scenarios() -> list[Scenario]:
    scenarios = [Scenario(f, m) for f in JOB_FAMILIES for m in JOB_MOMENTS]
    scenarios.extend(Scenario("databricks", m) for m in REPAIR_MOMENTS)
    for family in WALK_FAMILIES:
        for moment in WALK_MOMENTS:
            if moment == "mid_walk":
                scenarios.extend(Scenario(family, moment, variant) for variant in POLICIES)
            else:
                scenarios.append(Scenario(family, moment))
    # TaskFlow: the default checkpoint policy only (the policies are the walk families' table).
    scenarios.extend(Scenario(family, moment) for family, moments in TASKFLOW_MOMENTS.items() for moment in moments)
    return scenarios


def by_dag_id() -> dict[str, Scenario]:
    return {s.dag_id: s for s in all_scenarios()}


def scenario_of(name: str) -> Scenario | None:
    """The scenario a service request names (``deploy_toy_mid_poll`` or ``deploy_toy_mapped/1``)."""
    return by_dag_id().get(name.split("/", 1)[0])
