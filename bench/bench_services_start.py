"""Starting the embedded services side by side (`services.start_all`) against one after another.

`make run` and `make services-start` start Kafka, FerretDB, MLflow and the SQL server
before anything else. Each start is mostly a process coming up, so this bench times, in
a lakehouse folder of its own (the configured ports), rounds of: all of them started by
``start_all``, then stopped; all of them started one after another (``Service.start`` in
turn), then stopped. The first round also creates each service's storage and the SQL
server's class archive, so it is printed but left out of the medians. Prints every round,
the medians and the ratio side by side / one after another.

    python -m bench.bench_services_start --rounds 3
"""

from __future__ import annotations

import os
import tempfile
import time
from statistics import median
from typing import Annotated

import typer
from rich.table import Table

from bench import bench_console
from lakehouse import config, services

WAYS = ("side by side", "one after another")


def _start(svcs: list[services.Service], way: str) -> float:
    started = time.perf_counter()
    if way == "side by side":
        services.start_all(svcs)
    else:
        for svc in svcs:
            svc.start()
    return round(time.perf_counter() - started, 1)


def report(rounds: list[dict[str, float]]) -> Table:
    """Every round, and the medians and their ratio over the rounds after the first."""
    table = Table("round", *(f"{way} s" for way in WAYS))
    for i, times in enumerate(rounds, start=1):
        table.add_row(f"{i}{' (first: storage, archive)' if i == 1 else ''}", *(f"{times[w]:.1f}" for w in WAYS))
    warm = rounds[1:] or rounds
    medians = {w: median(t[w] for t in warm) for w in WAYS}
    table.add_row("median (rounds 2+)", *(f"{medians[w]:.1f}" for w in WAYS), style="bold")
    table.caption = f"side by side / one after another: {medians['side by side'] / medians['one after another']:.2f}"
    return table


def cli(rounds: Annotated[int, typer.Option(help="Rounds of both ways (the first is left out of the medians).")] = 3) -> None:
    """Time the embedded services' start side by side and one after another."""
    os.environ["LAKEHOUSE_DIR"] = tempfile.mkdtemp(prefix="bench-services-")  # the services' processes read it too
    svcs = [svc for name, svc in services.all_services(config.load()).items() if name != "superset"]
    busy = [f"{svc.name} (port {svc.port})" for svc in svcs if services.port_open(svc.port)]
    if busy:
        raise typer.BadParameter(f"ports in use: {', '.join(busy)}; stop those services first (`make services-stop`)")
    console = bench_console()
    results = []
    for i in range(rounds):
        times = {}
        for way in WAYS:
            times[way] = _start(svcs, way)
            for svc in svcs:
                svc.stop()
        console.print(f"round {i + 1}: {times}")
        results.append(times)
    console.print(report(results))


if __name__ == "__main__":
    typer.run(cli)
