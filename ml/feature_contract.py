"""The contract between the dbt feature marts, training and the live scorer.

Training and the streaming scorer both import this module, so the names of the
tables, keys, labels and the rule that *every* ``f_*`` column is a feature live
in one place. Feature columns are discovered by prefix (never listed by hand) so
the mart can grow without touching ML code; the registered model's signature
then fixes the column order the scorer must send.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import pandas as pd

SCHEMA = "analytics"
PURCHASE_TABLE = f"{SCHEMA}.fct_purchase_intent_features"
CATEGORY_TABLE = f"{SCHEMA}.fct_category_features"

FEATURE_PREFIX = "f_"
TARGET_PREFIX = "y_"
KEY_COLUMNS: tuple[str, ...] = ("session_id", "user_id", "prediction_point", "prediction_time", "event_date")
PURCHASE_LABEL = "label_will_purchase"

# Top-level categories (first segment of REES46 `category_code`; `unknown` = empty code).
CATEGORIES: tuple[str, ...] = (
    "electronics",
    "appliances",
    "computers",
    "furniture",
    "apparel",
    "auto",
    "construction",
    "kids",
    "sport",
    "accessories",
    "medicine",
    "country_yard",
    "stationery",
    "unknown",
)
UNKNOWN_CATEGORY = CATEGORIES[-1]  # no category_code: never a recommendation or a training target
# Optional feature families the category baseline "what this user viewed last" reads:
# in-session counts so far, then the user's prior shares. Both spellings are accepted
# (the brief's and the dbt mart's `f_so_far_<c>` / `f_prior_share_<c>`); first match wins.
SESSION_COUNT_PREFIXES: tuple[str, ...] = ("f_session_cnt_", "f_so_far_")
USER_SHARE_PREFIXES: tuple[str, ...] = ("f_user_share_", "f_prior_share_")
SESSION_COUNT_PREFIX = SESSION_COUNT_PREFIXES[0]
USER_SHARE_PREFIX = USER_SHARE_PREFIXES[0]

TASKS: tuple[str, ...] = ("purchase", "category")
POINTS_VAR = "intent_prediction_points"  # the dbt var holding K of the prediction-point rule


@cache
def prediction_points() -> int:
    """K: the feature marts' points are k = 1..K (before the session's first purchase).

    Read from dbt_project.yml, where the marts read it, so that the scorer never scores
    a point the models were not trained on and Python holds no copy of the number.
    """
    import yaml

    from lakehouse.config import REPO_ROOT

    project = yaml.safe_load((REPO_ROOT / "dbt_project.yml").read_text())
    return int(project["vars"][POINTS_VAR])


class MartError(RuntimeError):
    """The feature mart is missing, empty or breaks the contract; the message says what to run."""


@dataclass(frozen=True)
class TaskSpec:
    """Where one task's rows come from and which columns are its targets."""

    task: str
    table: str
    experiment: str
    registered_model: str
    dbt_select: str


TASK_SPECS: dict[str, TaskSpec] = {
    "purchase": TaskSpec("purchase", PURCHASE_TABLE, "purchase_intent", "purchase_intent", "+fct_purchase_intent_features"),
    "category": TaskSpec("category", CATEGORY_TABLE, "category_top3", "category_top3", "+fct_category_features"),
}


def feature_columns(columns: Sequence[str]) -> list[str]:
    """All ``f_*`` columns, in the frame's order (the order the model is trained and scored with)."""
    return [c for c in columns if c.startswith(FEATURE_PREFIX)]


def target_columns(columns: Sequence[str]) -> list[str]:
    """All ``y_<category>`` columns, in the frame's order."""
    return [c for c in columns if c.startswith(TARGET_PREFIX)]


def category_of_target(column: str) -> str:
    return column[len(TARGET_PREFIX) :]


def cart_feature(columns: Sequence[str]) -> str | None:
    """The feature the "session has a cart" baseline reads: the first ``f_*`` column about carts.

    Matched by name (``cart`` in it, not ``remove``) rather than fixed, so the baseline
    follows whatever the mart calls it; None when the mart has no such column.
    """
    for c in feature_columns(columns):
        name = c.lower()
        if "cart" in name and "remove" not in name and "rate" not in name and "share" not in name:
            return c
    return None


def contract_features(task: str) -> list[str]:
    """The ``f_*`` columns the task's mart declares in its dbt contract (``_ml_features.yml``), in order.

    A model is promoted only when it was trained on exactly these: one trained on a
    hand-made frame or an older mart could not score what the scorer computes.
    """
    import yaml

    from lakehouse.config import REPO_ROOT

    spec = TASK_SPECS[task]
    doc = yaml.safe_load((REPO_ROOT / "dbt_project" / "models" / "marts" / "_ml_features.yml").read_text(encoding="utf-8"))
    model = next(m for m in doc["models"] if m["name"] == spec.table.split(".")[-1])
    return [c["name"] for c in model["columns"] if c["name"].startswith(FEATURE_PREFIX)]


def label_columns(task: str, columns: Sequence[str]) -> list[str]:
    return [PURCHASE_LABEL] if task == "purchase" else target_columns(columns)


def validate(frame: pd.DataFrame, task: str, source: str) -> pd.DataFrame:
    """Check the frame follows the contract and return it with normalised dtypes.

    Raises MartError (never a bare KeyError deep in training) when the frame is empty,
    keys or labels are missing, or a feature is non-numeric or null.
    """
    spec = TASK_SPECS[task]
    hint = f"build it with `dbt run --select {spec.dbt_select}`"
    if frame is None or len(frame) == 0:
        raise MartError(f"{source} is empty: no rows to train on; {hint}.")
    missing = [c for c in ("session_id", "user_id", "prediction_point", "prediction_time") if c not in frame.columns]
    if missing:
        raise MartError(f"{source} lacks key column(s) {missing}; expected {list(KEY_COLUMNS)}.")
    labels = label_columns(task, list(frame.columns))
    if not labels or any(c not in frame.columns for c in labels):
        want = PURCHASE_LABEL if task == "purchase" else f"{TARGET_PREFIX}<category> columns"
        raise MartError(f"{source} has no label column ({want}).")
    features = feature_columns(list(frame.columns))
    if not features:
        raise MartError(f"{source} has no feature columns (names starting with {FEATURE_PREFIX!r}).")
    frame = frame.copy()
    bad = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])]
    if bad:
        raise MartError(f"{source}: feature column(s) {bad} are not numeric.")
    nulls = [c for c in features if frame[c].isna().any()]
    if nulls:
        raise MartError(f"{source}: feature column(s) {nulls} contain nulls; the contract says features are non-null.")
    frame[features] = frame[features].astype("float64")
    for c in labels:
        if frame[c].isna().any():
            raise MartError(f"{source}: label column {c} contains nulls.")
        frame[c] = frame[c].astype("int64")
    frame["prediction_time"] = pd.to_datetime(frame["prediction_time"], utc=True).dt.tz_localize(None)
    frame["session_id"] = frame["session_id"].astype(str)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["prediction_point"] = frame["prediction_point"].astype("int64")
    return frame


def read_mart(task: str, source: pd.DataFrame | None = None, spark=None) -> pd.DataFrame:
    """The task's feature frame: from a given pandas frame, or from the Spark catalog via Arrow.

    Accepting a frame lets tests and benchmarks feed synthetic data through the exact
    same validation the real mart gets.
    """
    spec = TASK_SPECS[task]
    if source is not None:
        return validate(source, task, "the given feature frame")
    if spark is None:
        from lakehouse.spark import get_spark

        spark = get_spark(f"ml-train-{task}", catalog=True)
    spark.conf.set("spark.sql.execution.arrow.pyspark.enabled", "true")
    if not spark.catalog.tableExists(spec.table):
        raise MartError(
            f"Feature mart {spec.table} does not exist in the Spark catalog; build it with `dbt run --select {spec.dbt_select}`."
        )
    frame = spark.table(spec.table).toPandas()
    return validate(frame, task, f"feature mart {spec.table}")


def main() -> None:
    """Print the contract (tables, keys, labels, prefixes) for humans and the scorer's docs."""
    for spec in TASK_SPECS.values():
        print(f"{spec.task}: table={spec.table} experiment={spec.experiment} registered_model={spec.registered_model}")
    print(f"keys={list(KEY_COLUMNS)} features={FEATURE_PREFIX}* targets={TARGET_PREFIX}<category> purchase_label={PURCHASE_LABEL}")
    print(f"categories={list(CATEGORIES)}")


if __name__ == "__main__":
    main()
