"""Shared plumbing for the clickstream lakehouse.

Configuration (`lakehouse.config`), the Spark session factory (`lakehouse.spark`)
and start/stop of the embedded services (`lakehouse.services`) live here, so that
`streaming/`, `ml/` and the tests import one definition of each.
"""
