"""Shared plumbing for the clickstream lakehouse.

Configuration (`lakehouse.config`), the Spark session factory (`lakehouse.spark`)
and start/stop of the embedded services (`lakehouse.services`) live here, so that
`streaming/`, `ml/` and the tests import one definition of each.
"""

import os

# Before anything imports gRPC (Spark Connect's client reads this once, at its import):
# by default, a child forked while a Connect channel is open restarts
# gRPC's poller, and when the child closes the inherited descriptors before its exec
# (subprocess with `preexec_fn`, which is how pyspark starts a driver JVM) the poller
# aborts it on "epoll_wait error: Bad file descriptor" (grpc/grpc#43055). The pipeline
# opens its Connect session and then starts a local driver; once in CI, that driver never
# started ("Java gateway process exited before sending its port number"). No lakehouse
# process uses gRPC in a forked child: every child exec's a program.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
