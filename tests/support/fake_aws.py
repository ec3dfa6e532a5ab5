"""
A thin layer over moto's EMR backends for the behaviour our operators rely on and moto lacks.

moto (5.1 and 5.2) leaves a new EMR step PENDING/RUNNING forever, finishes an EMR Serverless job run
the moment it starts, leaves an EMR on EKS job RUNNING forever, and starts a new job run for every
StartJobRun even when the ``clientToken`` repeats. Real AWS moves steps and runs through their
states and answers a repeated ``clientToken`` with the run it already started. This layer patches
moto's in-process backend objects (``mock_aws`` and ``ThreadedMotoServer`` share them) so that:

* ``StartJobRun`` (Serverless, on EKS) with a known ``clientToken`` returns the existing run;
* a step / job run starts RUNNING and reaches the outcome a test scripted (default: success; for
  steps, one outcome for the whole AddJobFlowSteps call or one per step) on the next status read (DescribeStep, ``ListSteps`` naming it in ``StepIds`` (what the official deferrable
  trigger's waiter and the operators' status check call), GetJobRun, DescribeJobRun), after
  ``running_reads`` reads that still see it RUNNING; a ``ListSteps`` of the whole cluster (the lookup
  by marker) does not move it;
* as on EMR, a step that FAILS with ActionOnFailure CANCEL_AND_WAIT or TERMINATE_CLUSTER cancels the
  steps still pending on its cluster, TERMINATE_CLUSTER (or TERMINATE_JOB_FLOW) also shuts the
  cluster down unless termination protection is on, and AddJobFlowSteps to a cluster that is not
  alive is refused with a ValidationException (moto would add them and set the cluster RUNNING).

Everything else is moto unchanged. Counts for assertions come straight from the backends.
"""

from __future__ import annotations

import contextlib
import json
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

ACCOUNT = "123456789012"
REGION = "us-east-1"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/emr-job"


@dataclass
class FakeAws:
    #: Outcome of the next AddJobFlowSteps / StartJobRun calls, in order; then ``default_outcome``. An
    #: AddJobFlowSteps outcome is a state for all its steps or a list of one state per step
    #: (``tests/support/emr.py``'s ``failing_at`` builds one as EMR's ActionOnFailure would).
    step_outcomes: list[str | list[str]] = field(default_factory=list)
    run_outcomes: list[str] = field(default_factory=list)
    container_outcomes: list[str] = field(default_factory=list)
    default_step_outcome: str = "COMPLETED"
    default_run_outcome: str = "SUCCESS"
    default_container_outcome: str = "COMPLETED"
    #: Step names (without the resumable marker) whose first step added FAILS, whatever was scripted;
    #: later steps of that name reach their scripted outcome (``make demo-emr``'s one failure per task).
    fail_once: set[str] = field(default_factory=set)
    #: Status reads a new step / run stays RUNNING before reaching its outcome.
    running_reads: int = 0
    calls: dict[str, int] = field(default_factory=dict)
    _targets: dict[int, list[Any]] = field(default_factory=dict)

    # ---- backends -----------------------------------------------------------------------------------

    @staticmethod
    def emr() -> Any:
        from moto.emr.models import emr_backends

        return emr_backends[ACCOUNT][REGION]

    @staticmethod
    def serverless() -> Any:
        from moto.emrserverless.models import emrserverless_backends

        return emrserverless_backends[ACCOUNT][REGION]

    @staticmethod
    def containers() -> Any:
        from moto.emrcontainers.models import emrcontainers_backends

        return emrcontainers_backends[ACCOUNT][REGION]

    # ---- counts for assertions ----------------------------------------------------------------------

    def steps(self, cluster_id: str) -> list[Any]:
        return list(self.emr().clusters[cluster_id].steps)

    def job_runs(self, application_id: str) -> list[Any]:
        return list(self.serverless().job_runs.get(application_id, []))

    def container_jobs(self) -> list[Any]:
        backend = self.containers()
        # moto 5.2 calls them job_runs, 5.1 jobs.
        runs = getattr(backend, "job_runs", None)
        return list((runs if runs is not None else backend.jobs).values())

    def clusters(self) -> list[Any]:
        return list(self.emr().clusters.values())

    # ---- the layer ------------------------------------------------------------------------------------

    def _count(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1

    def _mark(self, obj: Any, outcome: str, reached: Callable[[], None] | None = None) -> None:
        obj.state = "RUNNING"
        self._targets[id(obj)] = [obj, outcome, self.running_reads, reached]

    def _advance(self, obj: Any) -> None:
        entry = self._targets.get(id(obj))
        if entry is None or obj.state != "RUNNING":
            return
        if entry[2] > 0:
            entry[2] -= 1
            return
        obj.state = entry[1]
        del self._targets[id(obj)]
        if entry[3] is not None:
            entry[3]()

    def _step_outcomes(self, count: int) -> list[str]:
        outcome = self.step_outcomes.pop(0) if self.step_outcomes else self.default_step_outcome
        outcomes = [outcome] * count if isinstance(outcome, str) else list(outcome)
        if len(outcomes) != count:
            raise AssertionError(f"the test scripted {len(outcomes)} step outcomes for {count} steps added")
        return outcomes

    def _after_step(self, cluster: Any, step: Any) -> None:
        """
        What EMR does when a step fails: unless its ActionOnFailure is CONTINUE, the steps still
        pending on the cluster are cancelled, and TERMINATE_CLUSTER shuts an unprotected cluster down.
        """
        if step.state != "FAILED" or cluster is None or step.action_on_failure == "CONTINUE":
            return
        for later in cluster.steps[cluster.steps.index(step) + 1 :]:
            if later.state in ("PENDING", "RUNNING"):
                later.state = "CANCELLED"
                self._targets.pop(id(later), None)
        if step.action_on_failure in ("TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW") and not cluster.termination_protected:
            cluster.terminate()
            cluster.state = "TERMINATED_WITH_ERRORS"  # what EMR reports after a failed step shut it down

    @contextlib.contextmanager
    def installed(self) -> Iterator[FakeAws]:
        from moto.emr.models import ElasticMapReduceBackend
        from moto.emrcontainers.models import EMRContainersBackend
        from moto.emrserverless.models import EMRServerlessBackend

        fake = self
        originals = {
            (ElasticMapReduceBackend, "add_job_flow_steps"): ElasticMapReduceBackend.add_job_flow_steps,
            (ElasticMapReduceBackend, "describe_step"): ElasticMapReduceBackend.describe_step,
            (ElasticMapReduceBackend, "list_steps"): ElasticMapReduceBackend.list_steps,
            (EMRServerlessBackend, "start_job_run"): EMRServerlessBackend.start_job_run,
            (EMRServerlessBackend, "get_job_run"): EMRServerlessBackend.get_job_run,
            (EMRContainersBackend, "start_job_run"): EMRContainersBackend.start_job_run,
            (EMRContainersBackend, "describe_job_run"): EMRContainersBackend.describe_job_run,
        }

        def add_job_flow_steps(backend: Any, job_flow_id: str, steps: Any) -> Any:
            from moto.emr.exceptions import ValidationException

            fake._count("AddJobFlowSteps")
            cluster = backend.clusters.get(job_flow_id)
            if cluster is not None and cluster.state not in ("STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"):
                raise ValidationException(
                    "A job flow that is shutting down, terminated, or finished may not be modified."
                )
            added = originals[(ElasticMapReduceBackend, "add_job_flow_steps")](backend, job_flow_id, steps)
            for step, outcome in zip(added, fake._step_outcomes(len(added)), strict=True):
                name = step.name.split(" [")[0]
                if name in fake.fail_once:
                    fake.fail_once.discard(name)
                    outcome = "FAILED"
                fake._mark(step, outcome, reached=lambda step=step: fake._after_step(cluster, step))
            return added

        def describe_step(backend: Any, cluster_id: str, step_id: str) -> Any:
            fake._count("DescribeStep")
            step = originals[(ElasticMapReduceBackend, "describe_step")](backend, cluster_id, step_id)
            if step is not None:
                fake._advance(step)
            return step

        def list_steps(backend: Any, cluster_id: str, *args: Any, **kwargs: Any) -> Any:
            fake._count("ListSteps")
            steps = originals[(ElasticMapReduceBackend, "list_steps")](backend, cluster_id, *args, **kwargs)
            if kwargs.get("step_ids"):
                for step in steps:
                    fake._advance(step)
            return steps

        def serverless_start(backend: Any, application_id: str, client_token: str, *args: Any, **kwargs: Any) -> Any:
            fake._count("StartJobRun")
            for run in backend.job_runs.get(application_id, []):
                if run.client_token == client_token:
                    return run
            run = originals[(EMRServerlessBackend, "start_job_run")](
                backend, application_id, client_token, *args, **kwargs
            )
            fake._mark(run, fake.run_outcomes.pop(0) if fake.run_outcomes else fake.default_run_outcome)
            return run

        def serverless_get(backend: Any, application_id: str, job_run_id: str) -> Any:
            fake._count("GetJobRun")
            for run in backend.job_runs.get(application_id, []):
                if run.id == job_run_id:
                    fake._advance(run)
            return originals[(EMRServerlessBackend, "get_job_run")](backend, application_id, job_run_id)

        def containers_start(backend: Any, *args: Any, **kwargs: Any) -> Any:
            fake._count("StartJobRunOnEks")
            token = kwargs.get("client_token")
            for job in fake.container_jobs():
                if token and job.client_token == token:
                    return job
            job = originals[(EMRContainersBackend, "start_job_run")](backend, *args, **kwargs)
            fake._mark(
                job, fake.container_outcomes.pop(0) if fake.container_outcomes else fake.default_container_outcome
            )
            return job

        def containers_describe(backend: Any, **kwargs: Any) -> Any:
            fake._count("DescribeJobRun")
            job_id = kwargs.get("job_run_id") or kwargs.get("job_id")  # moto 5.2 / 5.1 spelling
            for job in fake.container_jobs():
                if job.id == job_id:
                    fake._advance(job)
            return originals[(EMRContainersBackend, "describe_job_run")](backend, **kwargs)

        replacements = {
            (ElasticMapReduceBackend, "add_job_flow_steps"): add_job_flow_steps,
            (ElasticMapReduceBackend, "describe_step"): describe_step,
            (ElasticMapReduceBackend, "list_steps"): list_steps,
            (EMRServerlessBackend, "start_job_run"): serverless_start,
            (EMRServerlessBackend, "get_job_run"): serverless_get,
            (EMRContainersBackend, "start_job_run"): containers_start,
            (EMRContainersBackend, "describe_job_run"): containers_describe,
        }
        for (cls, name), func in replacements.items():
            setattr(cls, name, func)
        try:
            yield self
        finally:
            for (cls, name), func in originals.items():
                setattr(cls, name, func)


# ---- fixtures' helpers: resources the tests run against ---------------------------------------------------


def create_cluster(client: Any, name: str = "resumable-it", **overrides: Any) -> str:
    params: dict[str, Any] = {
        "Name": name,
        "ReleaseLabel": "emr-7.1.0",
        "Instances": {
            "InstanceCount": 1,
            "MasterInstanceType": "m5.xlarge",
            "KeepJobFlowAliveWhenNoSteps": True,
        },
        "JobFlowRole": "EMR_EC2_DefaultRole",
        "ServiceRole": "EMR_DefaultRole",
        **overrides,
    }
    return client.run_job_flow(**params)["JobFlowId"]


def create_application(client: Any, name: str = "resumable-it") -> str:
    return client.create_application(name=name, releaseLabel="emr-7.1.0", type="SPARK")["applicationId"]


def create_virtual_cluster(client: Any, name: str = "resumable-it") -> str:
    return client.create_virtual_cluster(
        name=name, containerProvider={"id": "eks-cluster", "type": "EKS", "info": {"eksInfo": {"namespace": "emr"}}}
    )["id"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def aws_connection_json(endpoint_url: str) -> str:
    """An ``aws`` connection pointing every client at the moto server; the keys are moto's fakes."""
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": endpoint_url, "region_name": REGION},
        }
    )
