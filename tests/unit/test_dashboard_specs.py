"""The dashboards' import bundle and Superset's credentials, without Superset: what the specs in dashboards/ refer to exists."""

from __future__ import annotations

import io
import stat
import zipfile

import yaml

from lakehouse import config, dashboards


def _bundle(tmp_path) -> dict[str, dict]:
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path), "SQL_SERVER_THRIFT_PORT": "10123"})
    with zipfile.ZipFile(io.BytesIO(dashboards.bundle(cfg))) as zf:
        return {name.split("/", 1)[1]: yaml.safe_load(zf.read(name)) for name in zf.namelist()}


def _referenced_columns(params: dict) -> set[str]:
    names = set(params.get("groupby", [])) | set(params.get("all_columns", []))
    names |= {params[k] for k in ("x_axis", "column") if k in params}
    return names


def test_every_chart_names_metrics_and_columns_its_dataset_has(tmp_path):
    files = _bundle(tmp_path)
    datasets = {d["uuid"]: d for name, d in files.items() if name.startswith("datasets/")}
    charts = [c for name, c in files.items() if name.startswith("charts/")]
    assert len(charts) >= 4 * 3
    for chart in charts:
        dataset = datasets[chart["dataset_uuid"]]
        metrics = {m["metric_name"] for m in dataset["metrics"]}
        columns = {c["column_name"] for c in dataset["columns"]}
        params = chart["params"]
        wanted = set(params.get("metrics", [])) | ({params["metric"]} if "metric" in params else set())
        assert wanted <= metrics, f"{chart['slice_name']}: no metric {wanted - metrics} in {dataset['table_name']}"
        assert _referenced_columns(params) <= columns, f"{chart['slice_name']}: no column {_referenced_columns(params) - columns}"


def test_filters_target_columns_of_their_datasets_and_skip_the_other_charts(tmp_path):
    files = _bundle(tmp_path)
    datasets = {d["uuid"]: d for name, d in files.items() if name.startswith("datasets/")}
    funnel = files["dashboards/funnel.yaml"]
    filters = {f["name"]: f for f in funnel["metadata"]["native_filter_configuration"]}
    brand = filters["Brand"]
    target = brand["targets"][0]
    assert target["column"]["name"] in {c["column_name"] for c in datasets[target["datasetUuid"]]["columns"]}
    chart_ids = [v["meta"]["chartId"] for v in funnel["position"].values() if isinstance(v, dict) and v.get("type") == "CHART"]
    assert 0 < len(brand["scope"]["excluded"]) < len(chart_ids)  # only the brand mart's chart is filtered by brand


def test_the_bundle_is_the_same_every_time_and_points_at_the_thrift_port(tmp_path):
    assert _bundle(tmp_path) == _bundle(tmp_path)  # fixed UUIDs: a re-import replaces, never duplicates
    assert _bundle(tmp_path)["databases/lakehouse.yaml"]["sqlalchemy_uri"] == "hive://hive@127.0.0.1:10123/default"


def test_dataset_columns_come_from_the_tables_contracts():
    funnel = dict(dashboards._table_columns("analytics.fct_funnel_daily"))
    assert funnel["session_date"] == "date" and funnel["cart_abandoned_sessions"] == "bigint"
    assert dict(dashboards._table_columns("gold.predictions"))["purchase_probability"] == "double"
    assert dict(dashboards._table_columns("bronze.quarantine"))["reason"] == "string"


def test_credentials_are_generated_once_and_owner_only(tmp_path):
    cfg = config.load({"LAKEHOUSE_DIR": str(tmp_path)})
    first = dashboards.credentials(cfg)
    assert first == dashboards.credentials(cfg)
    assert len(first["password"]) >= 16 and len(first["secret_key"]) >= 32
    assert stat.S_IMODE(cfg.credentials_file.stat().st_mode) == 0o600
    other = dashboards.credentials(config.load({"LAKEHOUSE_DIR": str(tmp_path / "other")}))
    assert other["password"] != first["password"]  # random per lakehouse, never a default
    line = dashboards.login_lines(cfg)[0]
    assert first["password"] not in line and str(cfg.credentials_file) in line
