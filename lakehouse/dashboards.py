"""Apache Superset with the lakehouse's dashboards: ``python -m lakehouse.dashboards start``.

Superset runs from a virtual environment of its own (``.deps/superset-venv``, made by
``make superset`` from ``setup/superset-requirements.txt``): it pins SQLAlchemy 1.4 and
MLflow needs 2.x, so they cannot share ``.venv``. Its metadata database is SQLite in
``$LAKEHOUSE_DIR/_services/superset``, beside a generated ``superset_config.py`` and the
credentials (admin password and ``SECRET_KEY``), which are made at the first start and
readable by their owner only.

The dashboards are code: ``dashboards/*.yaml`` describe datasets, charts, layout and
filters; :func:`bundle` turns them into Superset's import format (a zip of YAML files
with fixed UUIDs) and every start imports it with ``superset import-dashboards``, so a
dashboard changed in the UI is put back to what the repository says. Datasets query the
lakehouse SQL server's Thrift endpoint with Superset's "Apache Spark SQL" connector
(PyHive, ``hive://``); their columns come from the tables' own contracts (the marts'
dbt schema files, the quarantine and predictions columns of ``streaming``), not from a copy.
"""

from __future__ import annotations

import io
import os
import subprocess
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import typer
import yaml

from lakehouse import config
from lakehouse import credentials as lakehouse_credentials
from lakehouse.services import Service, ServiceError, _tail, port_open

SPEC_DIR = config.REPO_ROOT / "dashboards"
_IMPORTER = Path(__file__).with_name("superset_import.py")
MARTS_DIR = config.REPO_ROOT / "dbt_project" / "models" / "marts"
DATABASE_NAME = "lakehouse"
# Fixed namespace: the same spec gives the same UUIDs, so a re-import overwrites instead of duplicating.
_NAMESPACE = uuid.UUID("8f0c5c9e-3b7e-4e0a-9d8a-2f6f1c1a7d20")
_SPARK_TYPES = {"date": "DATE", "timestamp": "TIMESTAMP", "string": "STRING", "boolean": "BOOLEAN"}


def _uuid(kind: str, name: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


# -- credentials -----------------------------------------------------------------------------


def credentials(cfg: config.Config) -> dict[str, str]:
    """The admin login and the ``SECRET_KEY``, random per lakehouse folder (lakehouse.credentials).

    Superset refuses to start on its default key (it signs sessions and encrypts the
    stored connection passwords), and a fixed password in the repository would be everyone's.
    """
    admin = cfg.embedded_login("superset")
    return {
        "username": admin.username,
        "password": admin.password,
        "secret_key": lakehouse_credentials.superset_secret_key(cfg.credentials_file),
    }


# -- the service -----------------------------------------------------------------------------


def url(cfg: config.Config) -> str:
    return f"http://127.0.0.1:{cfg['SUPERSET_PORT']}"


def sqlalchemy_uri(cfg: config.Config) -> str:
    """Superset's "Apache Spark SQL" connection: PyHive's ``hive://`` dialect to the Thrift endpoint."""
    return f"hive://hive@127.0.0.1:{cfg['SQL_SERVER_THRIFT_PORT']}/default"


@dataclass(frozen=True)
class Superset(Service):
    """Superset's web server (gunicorn) on 127.0.0.1, importing the dashboards of ``dashboards/`` before it starts."""

    start_timeout: float = 180.0
    needs: ClassVar[tuple[str, ...]] = ("sql",)  # registers gold.predictions on the SQL server as it starts

    @property
    def venv(self) -> Path:
        return self.cfg.deps_dir / "superset-venv"

    @property
    def config_file(self) -> Path:
        return self.home / "superset_config.py"

    def check_installed(self) -> None:
        if not (self.venv / "bin" / "superset").exists():
            raise ServiceError(f"Apache Superset is not installed in {self.venv}; run `make superset` (part of `make setup`).")

    def environment(self) -> dict[str, str]:
        return {"SUPERSET_CONFIG_PATH": str(self.config_file), "SUPERSET_HOME": str(self.home), "FLASK_APP": "superset"}

    def superset(self, *args: str, env: dict[str, str] | None = None) -> None:
        """Run the ``superset`` CLI of Superset's venv."""
        self.run_logged([str(self.venv / "bin" / "superset"), *args], f"superset {args[0]}", env)

    def run_logged(self, command: list[str], what: str, env: dict[str, str] | None = None) -> None:
        """Run a command of Superset's venv with the service's environment; its output goes to the service log."""
        with open(self.log_file, "ab") as log:
            done = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.home,
                env={**os.environ, **self.environment(), **(env or {})},
            )
        if done.returncode != 0:
            raise ServiceError(f"could not {what}; see {self.log_file}:\n{_tail(self.log_file)}")

    def prepare(self) -> None:
        """Config, metadata database and admin on the first start; the dashboards of the repository on every start."""
        creds = credentials(self.cfg)
        lakehouse_credentials.write_private(self.config_file, superset_config(self.home, creds["secret_key"]))
        marker = self.home / "initialised"
        if not marker.exists():
            self.superset("db", "upgrade")
            # The password goes by environment (click's FLASK_ prefix for `fab create-admin --password`),
            # not on a command line every local user can read.
            self.superset(
                "fab", "create-admin", "--username", creds["username"],
                "--firstname", "Lakehouse", "--lastname", "Admin", "--email", "admin@localhost",
                env={"FLASK_FAB_CREATE_ADMIN_PASSWORD": creds["password"]},
            )  # fmt: skip
            self.superset("init")
            marker.write_text("done\n")
        if port_open(int(self.cfg["SQL_SERVER_THRIFT_PORT"])):  # type: ignore[arg-type]
            register_predictions(self.cfg)
        bundle_path = self.home / "dashboards.zip"
        bundle_path.write_bytes(bundle(self.cfg))
        self.run_logged([str(self.venv / "bin" / "python"), str(_IMPORTER), str(bundle_path), creds["username"]], "import the dashboards")

    def command(self) -> list[str]:
        return [
            str(self.venv / "bin" / "gunicorn"),
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            "1",
            "--threads",
            "8",
            "--worker-class",
            "gthread",
            "--timeout",
            "120",
            "superset.app:create_app()",
        ]

    def ready(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"{url(self.cfg)}/health", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False

    def endpoints(self) -> str:
        return f"{url(self.cfg)}, login in {self.cfg.credentials_file}"


def superset_config(home: Path, secret_key: str) -> str:
    """The ``superset_config.py`` Superset reads (``SUPERSET_CONFIG_PATH``)."""
    return "\n".join(
        [
            "# Generated by lakehouse.dashboards at each start; edits are overwritten.",
            f"SECRET_KEY = {secret_key!r}",
            f"SQLALCHEMY_DATABASE_URI = {('sqlite:///' + str(home / 'superset.db') + '?check_same_thread=false')!r}",
            "# No result cache: the live dashboard must show the newest predictions at each refresh.",
            "DATA_CACHE_CONFIG = {'CACHE_TYPE': 'NullCache'}",
            "# One machine, one user: the login rate limit's in-memory store is enough.",
            "RATELIMIT_STORAGE_URI = 'memory://'",
            "SUPERSET_WEBSERVER_TIMEOUT = 120",
            "",
        ]
    )


# -- dashboards as code ----------------------------------------------------------------------


def _mart_columns() -> dict[str, list[tuple[str, str]]]:
    """Columns and types of every mart, from the dbt schema files (their enforced contracts)."""
    marts: dict[str, list[tuple[str, str]]] = {}
    for path in sorted(MARTS_DIR.glob("*.yml")):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            marts[model["name"]] = [(c["name"], c.get("data_type", "string")) for c in model.get("columns", [])]
    return marts


def _table_columns(table: str) -> list[tuple[str, str]]:
    """A dataset's columns from the contract of its table: ``analytics.<mart>``, ``bronze.*`` or ``gold.predictions``."""
    schema, name = table.split(".")
    if schema == "analytics":
        return _mart_columns()[name]
    if (schema, name) == ("bronze", "quarantine"):
        from streaming.events import QUARANTINE_COLUMNS

        return [(c.name, c.sql_type) for c in QUARANTINE_COLUMNS]
    if (schema, name) == ("bronze", "events"):
        from streaming.events import BRONZE_COLUMNS

        return [(c.name, c.sql_type) for c in BRONZE_COLUMNS]
    if (schema, name) == ("gold", "predictions"):
        from streaming.predictions import PREDICTION_COLUMNS

        return [(n, t) for n, t, _ in PREDICTION_COLUMNS]
    raise ValueError(f"no contract known for table {table}; give the dataset `sql` and `columns`")


def _column(name: str, sql_type: str) -> dict[str, Any]:
    temporal = sql_type in ("date", "timestamp")
    return {
        "column_name": name,
        "type": _SPARK_TYPES.get(sql_type, sql_type.upper()),
        "is_dttm": temporal,
        "groupby": True,
        "filterable": True,
        "is_active": True,
        "expression": None,
        "verbose_name": None,
        "description": None,
        "python_date_format": None,
        "extra": {},
    }


def _dataset(name: str, spec: dict[str, Any], database_uuid: str) -> dict[str, Any]:
    """One dataset of the import bundle: a table (physical) or a SQL query (virtual, with its columns listed)."""
    if "sql" in spec:
        schema, table_name, sql = None, name, spec["sql"].strip()
        columns = [tuple(c.split(maxsplit=1)) for c in spec["columns"]]
    else:
        schema, table_name = spec["table"].split(".")
        sql, columns = None, _table_columns(spec["table"])
    metrics = [
        {
            "metric_name": m,
            "verbose_name": v.get("label"),
            "metric_type": None,
            "expression": v["sql"],
            "description": None,
            "d3format": v.get("format"),
            "extra": {},
            "warning_text": None,
        }
        for m, v in spec.get("metrics", {}).items()
    ]
    return {
        "table_name": table_name,
        "main_dttm_col": spec.get("time_column"),
        "description": spec.get("description"),
        "default_endpoint": None,
        "offset": 0,
        "cache_timeout": None,
        "schema": schema,
        "sql": sql,
        "params": None,
        "template_params": None,
        "filter_select_enabled": True,
        "fetch_values_predicate": None,
        "extra": None,
        "uuid": _uuid("dataset", name),
        "metrics": metrics,
        "columns": [_column(n, t) for n, t in columns],
        "version": "1.0.0",
        "database_uuid": database_uuid,
    }


def _chart_params(chart: dict[str, Any], dataset_id: str) -> dict[str, Any]:
    """Superset's form data for a chart: the spec's own params plus the dataset and viz type."""
    params = {"viz_type": chart["viz"], "datasource": f"{dataset_id}__table", "adhoc_filters": [], **chart.get("params", {})}
    return params


def _layout(dashboard: str, rows: list[list[dict[str, Any]]], chart_ids: dict[str, int]) -> dict[str, Any]:
    """Superset's position JSON: a grid of rows, each chart ``width`` columns of 12 wide and ``height`` grid units high."""
    position: dict[str, Any] = {
        "DASHBOARD_VERSION_KEY": "v2",
        "ROOT_ID": {"type": "ROOT", "id": "ROOT_ID", "children": ["GRID_ID"]},
        "GRID_ID": {"type": "GRID", "id": "GRID_ID", "children": [], "parents": ["ROOT_ID"]},
        "HEADER_ID": {"type": "HEADER", "id": "HEADER_ID", "meta": {"text": dashboard}},
    }
    for r, row in enumerate(rows):
        row_id = f"ROW-{r}"
        position["GRID_ID"]["children"].append(row_id)
        position[row_id] = {
            "type": "ROW",
            "id": row_id,
            "children": [],
            "parents": ["ROOT_ID", "GRID_ID"],
            "meta": {"background": "BACKGROUND_TRANSPARENT"},
        }
        for chart in row:
            chart_key = f"CHART-{chart_ids[chart['name']]}"
            position[row_id]["children"].append(chart_key)
            position[chart_key] = {
                "type": "CHART",
                "id": chart_key,
                "children": [],
                "parents": ["ROOT_ID", "GRID_ID", row_id],
                "meta": {
                    "chartId": chart_ids[chart["name"]],
                    "uuid": _uuid("chart", f"{dashboard}/{chart['name']}"),
                    "sliceName": chart["name"],
                    "width": chart.get("width", 4),
                    "height": chart.get("height", 50),
                },
            }
    return position


def _native_filters(dashboard: str, filters: list[dict[str, Any]], charts: list[dict[str, Any]], chart_ids: dict[str, int]) -> list:
    """Native filters; a column filter applies to the charts of its dataset only (the others lack the column)."""
    out = []
    for f in filters:
        fid = "NATIVE_FILTER-" + _uuid("filter", f"{dashboard}/{f['name']}")[:12]
        item: dict[str, Any] = {
            "id": fid,
            "name": f["name"],
            "type": "NATIVE_FILTER",
            "description": f.get("description", ""),
            "cascadeParentIds": [],
            "defaultDataMask": {"extraFormData": {}, "filterState": {}, "ownState": {}},
            "scope": {"rootPath": ["ROOT_ID"], "excluded": []},
        }
        if f["type"] == "time":
            item |= {"filterType": "filter_time", "targets": [{}], "controlValues": {"enableEmptyFilter": False}}
        else:
            excluded = [chart_ids[c["name"]] for c in charts if c["dataset"] not in f["datasets"]]
            item |= {
                "filterType": "filter_select",
                "targets": [{"datasetUuid": _uuid("dataset", f["datasets"][0]), "column": {"name": f["column"]}}],
                "controlValues": {
                    "multiSelect": True,
                    "enableEmptyFilter": False,
                    "defaultToFirstItem": False,
                    "searchAllOptions": False,
                    "inverseSelection": False,
                },
                "scope": {"rootPath": ["ROOT_ID"], "excluded": excluded},
            }
        out.append(item)
    return out


def load_specs() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The datasets (``dashboards/datasets.yaml``) and the dashboards (every other YAML file there, in name order)."""
    datasets = yaml.safe_load((SPEC_DIR / "datasets.yaml").read_text())["datasets"]
    dashboards = [yaml.safe_load(p.read_text()) for p in sorted(SPEC_DIR.glob("*.yaml")) if p.name != "datasets.yaml"]
    return datasets, dashboards


def bundle(cfg: config.Config) -> bytes:
    """Superset's dashboard import bundle (zip of YAML) for the specs in ``dashboards/``."""
    datasets, dashboards = load_specs()
    database_uuid = _uuid("database", DATABASE_NAME)
    files: dict[str, Any] = {
        "metadata.yaml": {"version": "1.0.0", "type": "Dashboard", "timestamp": "2026-01-01T00:00:00+00:00"},
        f"databases/{DATABASE_NAME}.yaml": {
            "database_name": DATABASE_NAME,
            "sqlalchemy_uri": sqlalchemy_uri(cfg),
            "cache_timeout": None,
            "expose_in_sqllab": True,
            "allow_run_async": False,
            "allow_ctas": False,
            "allow_cvas": False,
            "allow_dml": False,
            "allow_csv_upload": False,
            "extra": {"allows_virtual_table_explore": True},
            "uuid": database_uuid,
            "version": "1.0.0",
        },
    }
    for name, spec in datasets.items():
        files[f"datasets/{DATABASE_NAME}/{name}.yaml"] = _dataset(name, spec, database_uuid)
    chart_number = 0
    for board in dashboards:
        title = board["title"]
        charts = [chart for row in board["rows"] for chart in row]
        chart_ids = {}
        for chart in charts:
            chart_number += 1
            chart_ids[chart["name"]] = chart_number
            chart_uuid = _uuid("chart", f"{title}/{chart['name']}")
            files[f"charts/{board['slug']}-{chart_number}.yaml"] = {
                "slice_name": chart["name"],
                "description": chart.get("description"),
                "viz_type": chart["viz"],
                "params": _chart_params(chart, "0"),
                "cache_timeout": None,
                "uuid": chart_uuid,
                "version": "1.0.0",
                "dataset_uuid": _uuid("dataset", chart["dataset"]),
            }
        files[f"dashboards/{board['slug']}.yaml"] = {
            "dashboard_title": title,
            "description": board.get("description"),
            "css": board.get("css", ""),
            "slug": board["slug"],
            "uuid": _uuid("dashboard", board["slug"]),
            "position": _layout(title, board["rows"], chart_ids),
            "metadata": {
                "refresh_frequency": board.get("refresh_seconds", 0),
                "timed_refresh_immune_slices": [],
                "color_scheme": "supersetColors",
                "cross_filters_enabled": False,
                "native_filter_configuration": _native_filters(title, board.get("filters", []), charts, chart_ids),
            },
            "version": "1.0.0",
            "published": True,
        }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, content in files.items():
            zf.writestr(f"lakehouse_dashboards/{name}", yaml.safe_dump(content, sort_keys=False))
    return buf.getvalue()


# -- registering the tables the dashboards read ------------------------------------------------


def register_predictions(cfg: config.Config) -> None:
    """Name the path-addressed predictions table ``gold.predictions`` in the catalog, creating it empty if the scorer has not yet.

    The scorer writes it by path; a dataset needs a table name. Created here with the
    scorer's own columns and partitioning, so the scorer's ``ensure_predictions_table``
    finds it as its own.
    """
    from lakehouse.sql_server import thrift_cursor
    from streaming.predictions import PREDICTION_COLUMNS, predictions_path

    location = predictions_path(cfg).resolve()
    if (location / "_delta_log").is_dir():  # the scorer's table: its log has the schema (with the scorer's comments)
        create = f"create table if not exists gold.predictions using delta location '{location}'"
    else:
        columns = ", ".join(f"{n} {t}" for n, t, _ in PREDICTION_COLUMNS)
        create = f"create table if not exists gold.predictions ({columns}) using delta partitioned by (event_date) location '{location}'"
    with thrift_cursor(cfg) as cur:
        cur.execute("create schema if not exists gold")
        cur.execute(create)


# -- CLI -------------------------------------------------------------------------------------


def superset_service(cfg: config.Config) -> Superset:
    return Superset("superset", int(cfg["SUPERSET_PORT"]), cfg)  # type: ignore[arg-type]


def login_lines(cfg: config.Config) -> list[str]:
    """Where the dashboards are and how to log in, for ``make run``'s summary and ``start``."""
    creds = credentials(cfg)  # the password stays in its file: this output is pasted into issues
    return [f"dashboards (Apache Superset): {url(cfg)}/dashboard/list/ (login `{creds['username']}`, password in {cfg.credentials_file})"]


app = typer.Typer(help="Apache Superset with the lakehouse's dashboards (dashboards/*.yaml), on 127.0.0.1.", no_args_is_help=True)


@app.command()
def start() -> None:
    """Start the SQL server and Superset (importing the dashboards), then print the address and login."""
    from lakehouse import services

    cfg = config.load()
    try:
        sql = services.all_services(cfg).get("sql")
        if sql is not None:
            sql.start()
        superset_service(cfg).start()
    except ServiceError as exc:
        typer.secho(str(exc), fg="red", err=True)
        raise typer.Exit(1) from exc
    for line in login_lines(cfg):
        typer.echo(line)


@app.command()
def login() -> None:
    """Print the dashboards' address and the generated login."""
    for line in login_lines(config.load()):
        typer.echo(line)


@app.command()
def stop() -> None:
    """Stop Superset (the SQL server stays; `python -m lakehouse.services stop sql` stops it)."""
    typer.echo(f"superset: {'stopped' if superset_service(config.load()).stop() else 'was not running'}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
