"""A process holding a Spark Connect (gRPC) channel starts children that exec, every time.

Why: the pipeline opens its Connect session to the SQL server and then starts a local
Spark driver, which pyspark launches with ``subprocess.Popen(..., preexec_fn=...)``. With
gRPC's default fork handling, the child restarted gRPC's poller and, once the child
closed its inherited descriptors, the poller aborted it before the exec: a few starts in a
thousand failed. In CI, one was the driver of the newcomer's `make run` ("Java gateway
process exited before sending its port number"). Importing ``lakehouse`` turns gRPC's fork
support off.
"""

from __future__ import annotations

import os
import subprocess
import sys

from lakehouse import config

STARTS = 1500  # without the setting, 7 of these failed in each of three runs; with it, none

_CHILD = f"""
import subprocess
import lakehouse  # first, as every lakehouse program imports it before pyspark's Connect client
import grpc

channel = grpc.insecure_channel("127.0.0.1:1")  # nothing listens: the channel keeps gRPC's poller busy reconnecting
grpc.channel_ready_future(channel)
aborted = sum(subprocess.run(["true"], preexec_fn=lambda: None, stderr=subprocess.DEVNULL).returncode != 0 for _ in range({STARTS}))
channel.close()
print(aborted)
"""


def test_children_started_beside_an_open_grpc_channel_all_exec() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}  # the child's own import must set it
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=config.REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=True
    ).stdout
    assert int(out.strip().splitlines()[-1]) == 0, f"children aborted before their exec: {out}"
