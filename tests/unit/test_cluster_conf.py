"""What a driver sends a cluster (jars, executor sizes), and how the standalone daemons are started."""

from __future__ import annotations

from pathlib import Path

from lakehouse import config
from lakehouse.cluster import SparkMaster, SparkWorker, cluster_services
from lakehouse.spark import spark_conf

JARS = ("delta-spark_4.2_2.13-4.4.0.jar", "spark-sql-kafka-0-10_2.13-4.2.0.jar", "kafka-clients-3.9.2.jar")


def _cfg(tmp_path: Path, **environ: str) -> config.Config:
    jars = tmp_path / "deps" / "jars" / "spark"
    jars.mkdir(parents=True)
    for name in JARS:
        (jars / name).write_bytes(b"")
    return config.load({"LAKEHOUSE_DIR": str(tmp_path / "lake"), "LAKEHOUSE_DEPS_DIR": str(tmp_path / "deps"), **environ})


def test_on_a_cluster_every_jar_is_shipped_to_the_executors(tmp_path: Path):
    cfg = _cfg(tmp_path, SPARK_MASTER="spark://10.0.0.5:7077", SPARK_EXECUTOR_MEMORY="3g", SPARK_CORES_MAX="8")
    conf = spark_conf(cfg, catalog=False)
    assert sorted(conf["spark.jars"].split(",")) == sorted(str(cfg.spark_jars_dir / name) for name in JARS)
    assert (conf["spark.executor.memory"], conf["spark.cores.max"]) == ("3g", "8")
    assert conf["spark.driver.extraClassPath"] == f"{cfg.spark_jars_dir}/*"  # the driver still loads them itself


def test_in_local_mode_nothing_is_shipped(tmp_path: Path):
    conf = spark_conf(_cfg(tmp_path, SPARK_MASTER="local[2]"), catalog=True)
    assert not {"spark.jars", "spark.executor.memory", "spark.cores.max"} & set(conf)


def test_the_daemons_bind_to_loopback_on_the_configured_ports(tmp_path: Path):
    cfg = _cfg(
        tmp_path,
        SPARK_CLUSTER_MASTER_PORT="41077",
        SPARK_CLUSTER_UI_PORT="41080",
        SPARK_CLUSTER_WORKER_UI_PORT="41081",
        SPARK_CLUSTER_WORKERS="3",
        SPARK_CLUSTER_WORKER_CORES="2",
        SPARK_CLUSTER_WORKER_MEMORY="1500m",
    )
    master, *workers = cluster_services(cfg)
    assert isinstance(master, SparkMaster) and all(isinstance(w, SparkWorker) for w in workers)
    assert master.command()[-6:] == ["--host", "127.0.0.1", "--port", "41077", "--webui-port", "41080"]
    assert [w.port for w in workers] == [41081, 41082, 41083]
    assert len({w.work_dir for w in workers}) == 3  # each worker its own folder
    command = workers[0].command()
    assert command[2] == cfg.cluster_master_url == "spark://127.0.0.1:41077"
    options = dict(zip(command[3::2], command[4::2], strict=True))
    assert options == {
        "--host": "127.0.0.1",
        "--cores": "2",
        "--memory": "1500m",
        "--webui-port": "41081",
        "--work-dir": str(workers[0].work_dir),
    }


def test_every_worker_starts_after_the_master_it_registers_with(tmp_path: Path):
    master, *workers = cluster_services(_cfg(tmp_path, SPARK_CLUSTER_WORKERS="2"))
    assert isinstance(master, SparkMaster) and len(workers) == 2
    # `services.start_all` launches a service once those it needs, named before it, answer.
    assert all(worker.needs == (master.name,) for worker in workers)
    assert master.needs == ()
