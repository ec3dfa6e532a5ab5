"""
Local stand-in for AWS EMR for ``make demo-emr``: moto's server on 127.0.0.1 plus the test-side layer.

moto alone leaves EMR steps and EMR on EKS jobs RUNNING forever, finishes Serverless runs at once
and ignores a repeated ``clientToken``; ``tests/support/fake_aws.py`` (the layer the integration
tests use) makes steps and runs progress and honours the token, as AWS does. This process creates
an EMR Serverless application and an EMR on EKS virtual cluster and writes their ids, with the
server's URL, to ``--info-file`` as JSON; it serves until SIGTERM. ``--fail-once NAME`` makes the
first step named NAME fail (EMR's ActionOnFailure then decides what happens to the steps after it).
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path

import boto3

from tests.support.fake_aws import REGION, ROLE_ARN, FakeAws, create_application, create_virtual_cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--info-file", required=True)
    parser.add_argument("--running-reads", type=int, default=1, help="status reads a job stays RUNNING for")
    parser.add_argument(
        "--fail-once", action="append", default=[], help="a step name whose first step added fails (repeatable)"
    )
    args = parser.parse_args()

    from moto.server import ThreadedMotoServer

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with FakeAws(running_reads=args.running_reads, fail_once=set(args.fail_once)).installed():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"

        def client(service: str):  # type: ignore[no-untyped-def]
            return boto3.client(
                service,
                endpoint_url=url,
                region_name=REGION,
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )

        info = {
            "endpoint_url": url,
            "application_id": create_application(client("emr-serverless"), name="resumable-demo"),
            "virtual_cluster_id": create_virtual_cluster(client("emr-containers"), name="resumable-demo"),
            "role_arn": ROLE_ARN,
        }
        tmp = Path(args.info_file + ".tmp")
        tmp.write_text(json.dumps(info))
        tmp.replace(args.info_file)
        stop.wait()
        server.stop()


if __name__ == "__main__":
    main()
