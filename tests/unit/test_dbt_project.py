"""Static checks of the dbt project that need no JVM: it agrees with the contracts others rely on."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml

from lakehouse.config import REPO_ROOT
from streaming.events import BRONZE_COLUMNS, QUARANTINE_COLUMNS, ddl

DBT = REPO_ROOT / "dbt_project"
SEED = DBT / "seeds" / "top_level_categories.csv"


def _macro_body(name: str) -> str:
    text = (DBT / "macros" / "bronze_tables.sql").read_text()
    match = re.search(r"{% macro " + name + r"\(\) -%}(.*?){%- endmacro %}", text, re.S)
    assert match, name
    return " ".join(match.group(1).split())


def _models() -> dict[str, dict]:
    models = {}
    for path in (DBT / "models").rglob("*.yml"):
        for model in yaml.safe_load(path.read_text()).get("models", []):
            models[model["name"]] = model
    return models


def test_bronze_registration_uses_the_bronze_contract():
    assert _macro_body("bronze_events_ddl") == ddl(BRONZE_COLUMNS)
    assert _macro_body("bronze_quarantine_ddl") == ddl(QUARANTINE_COLUMNS)


def test_every_model_and_column_is_described():
    models = _models()
    sql_models = {p.stem for p in (DBT / "models").rglob("*.sql")}
    assert sql_models == set(models), "every model needs an entry in its group's YAML"
    for name, model in models.items():
        assert model.get("description", "").strip(), name
        assert model.get("columns"), name
        for column in model["columns"]:
            assert column.get("description", "").strip(), f"{name}.{column['name']}"


def test_marts_have_enforced_contracts_with_types():
    for name, model in _models().items():
        if not name.startswith(("fct_", "dim_")):
            continue
        assert model["config"]["contract"]["enforced"] is True, name
        assert all(c.get("data_type") for c in model["columns"]), name


def test_ml_feature_marts_follow_the_ml_contract():
    models = _models()
    categories = [row["category_top"] for row in csv.DictReader(SEED.open())]
    assert categories[-1] == "unknown" and "electronics" in categories
    for name in ("fct_purchase_intent_features", "fct_category_features"):
        columns = {c["name"]: c for c in models[name]["columns"]}
        assert [*columns][:5] == ["session_id", "user_id", "prediction_point", "prediction_time", "event_date"]
        assert columns["prediction_point"]["data_type"] == "int"
        rules = [t["column_rules"]["arguments"] for t in models[name]["data_tests"] if "column_rules" in t]
        assert rules and rules[0]["not_null"] == ["*"], "every column, every f_* feature among them, must be tested non-null"
        for col_name, col in columns.items():
            if col_name.startswith("f_"):
                assert col["data_type"] in ("double", "bigint"), col_name
    intent = {c["name"] for c in models["fct_purchase_intent_features"]["columns"]}
    assert {"label_will_purchase", "f_cart_value", "f_user_prior_spend", "f_product_prior_conversion"} <= intent
    assert {"f_price_vs_category", "f_product_prior_cart_rate", "f_user_prior_category_events", "f_user_prior_category_share"} <= intent
    assert "f_n_purchases" not in intent  # no point has a purchase among its events
    targets = [c["name"] for c in models["fct_category_features"]["columns"] if c["name"].startswith("y_")]
    [category_rules] = [t["column_rules"]["arguments"] for t in models["fct_category_features"]["data_tests"] if "column_rules" in t]
    assert category_rules["binary"] == ["y_*"], "every target must be tested 0 or 1"
    assert targets == [f"y_{c}" for c in categories]


def test_both_feature_marts_take_their_points_from_the_one_rule():
    """The prediction-point rule (k <= K, before the first purchase) is written once, in macros/session_events.sql."""
    macro = (DBT / "macros" / "session_events.sql").read_text()
    assert macro.count("var('intent_prediction_points')") == 1 and "is_prediction_point" in macro
    for name in ("fct_purchase_intent_features", "fct_category_features"):
        text = (DBT / "models" / "marts" / f"{name}.sql").read_text()
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        assert "where is_prediction_point" in code and "intent_prediction_points" not in code, name
        # a late purchase ends points a merge would keep: the dates it can touch are replaced
        assert "'replaces_days_from_start': true" in text and "release_cached_rows()" in text, name


def test_incremental_models_merge_and_record_what_they_consumed():
    """A model without the post-hook would recompute everything on every run; a mart without a key could not merge."""
    project = yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text())
    assert project["vars"]["arrival_margin_minutes"] >= 0
    assert project["vars"]["session_timeout_minutes"] == 30
    models = project["models"]["clickstream_lakehouse"]
    marts, accumulated = models["marts"], models["intermediate"]["days_accumulated"]
    assert marts["+materialized"] == accumulated["+materialized"] == "incremental"
    assert marts["+incremental_strategy"] == "merge" and accumulated["+incremental_strategy"] == "insert_overwrite"
    assert "record_arrivals()" in marts["+post-hook"] and "record_arrivals()" in accumulated["+post-hook"]
    # every model restores the overwrite mode dbt-spark leaves dynamic after an insert_overwrite model
    assert "restore_static_partition_overwrite()" in models["+post-hook"]
    for path in (DBT / "models" / "marts").glob("*.sql"):
        text = path.read_text()
        assert "arrival_window()" in text, path.name
        # a mart merges on its key, or replaces the dates it recomputes whole
        replaces = "incremental_strategy='insert_overwrite'" in text
        assert "unique_key=" in text or replaces, path.name
        if replaces:
            assert "partition_by=" in text and "rebuilds_from" in text, path.name
    for path in (DBT / "models" / "intermediate" / "days_accumulated").glob("*.sql"):
        assert "arrival_window()" in path.read_text(), path.name
    sessionized = (DBT / "models" / "intermediate" / "int_events_sessionized.sql").read_text()
    assert "record_arrivals(this)" in sessionized and "arrival_window(source('bronze', 'events'))" in sessionized


def test_exposures_declare_ml_training_and_figures():
    exposures = yaml.safe_load((DBT / "models" / "marts" / "_exposures.yml").read_text())["exposures"]
    text = str(exposures)
    assert "ml.train" in text and "lakehouse.figures" in text


def test_analyses_exist_for_the_readme_examples():
    names = {p.stem for p in Path(DBT / "analyses").glob("*.sql")}
    assert {"conversion_by_day", "dropoff_by_category", "top_abandoned_products"} <= names
