"""Session store commands: export, user history, user deletion (erasure) and reprocessing.

``python -m streaming.session_admin --help``. Every value typed by a person is
parsed into a Python ``int`` or ``datetime`` before it reaches a MongoDB filter or
a Delta predicate, so a user id like ``{"$ne": 0}`` or ``1 or 1=1`` is rejected
with a clear message instead of becoming a query operator or SQL.
"""

from __future__ import annotations

import csv
import json
import re
import sys
from datetime import datetime
from pathlib import Path

import typer
from bson import json_util

from lakehouse import config
from streaming.session_store import COLLECTION, connect, stored_form

_USER_ID = re.compile(r"^[0-9]{1,19}$")
_MAX_ID = 2**63 - 1
CSV_FIELDS = (
    "session_id",
    "user_id",
    "start_time",
    "last_event_time",
    "n_events",
    "view",
    "cart",
    "remove_from_cart",
    "purchase",
    "categories",
    "purchase_probability",
    "top3",
    "purchase_model_version",
    "category_model_version",
)

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


class InputError(ValueError):
    """A value typed by a person that is not what the command accepts."""


def parse_user_id(text: str) -> int:
    """A user id as a positive 64-bit integer; anything else raises InputError saying why."""
    value = str(text).strip()
    if not _USER_ID.fullmatch(value) or not 0 < int(value) <= _MAX_ID:
        raise InputError(f"user id must be a positive integer (digits only, at most 19), got {text!r}")
    return int(value)


def parse_time(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text.replace(" UTC", "").replace("Z", "")).replace(tzinfo=None)
    except ValueError as exc:
        raise InputError(f"{name} must be an ISO date/time like 2019-11-01 or 2019-11-01T12:00:00, got {text!r}") from exc


def session_filter(user: int | None, since: datetime | None, until: datetime | None) -> dict:
    """A MongoDB filter built only from typed values (never from raw user text)."""
    flt: dict = {}
    if user is not None:
        flt["user_id"] = int(user)
    rng = {}
    if since is not None:
        rng["$gte"] = since
    if until is not None:
        rng["$lt"] = until
    if rng:
        flt["last_event_time"] = rng
    return flt


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg="red", err=True)
    raise typer.Exit(2)


def _collection(cfg: config.Config):
    return connect(cfg.mongo_uri)[str(cfg["MONGO_DB"])][COLLECTION]


def csv_row(doc: dict) -> dict:
    p = doc.get("latest_prediction") or {}
    counts = doc.get("counts") or {}
    return {
        "session_id": doc.get("session_id"),
        "user_id": doc.get("user_id"),
        "start_time": doc.get("start_time"),
        "last_event_time": doc.get("last_event_time"),
        "n_events": doc.get("n_events"),
        **{t: counts.get(t, 0) for t in ("view", "cart", "remove_from_cart", "purchase")},
        "categories": ";".join(doc.get("categories") or []),
        "purchase_probability": p.get("purchase_probability"),
        "top3": ";".join(p.get("top3") or []),
        "purchase_model_version": p.get("purchase_model_version"),
        "category_model_version": p.get("category_model_version"),
    }


def export_sessions(coll, flt: dict, out, fmt: str, progress: bool = True) -> int:
    """Stream matching documents to ``out`` as JSON Lines or CSV; returns how many."""
    from tqdm import tqdm

    total = coll.count_documents(flt)
    cursor = coll.find(flt).sort([("user_id", 1), ("last_event_time", 1)]).batch_size(500)
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    n = 0
    for doc in tqdm(cursor, total=total, unit="session", disable=not progress, file=sys.stderr):
        if writer:
            writer.writerow(csv_row(doc))
        else:
            out.write(json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS) + "\n")
        n += 1
    return n


@app.command()
def export(
    output: Path = typer.Option(Path("-"), "--output", "-o", help="File to write; '-' is stdout."),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv."),
    user: str = typer.Option(None, help="Only this user's sessions (integer id)."),
    since: str = typer.Option(None, help="Only sessions whose last event is at or after this time (ISO)."),
    until: str = typer.Option(None, help="Only sessions whose last event is before this time (ISO)."),
    progress: bool = typer.Option(True, help="Show a progress bar on stderr."),
) -> None:
    """Export session documents (all, by user, by time range) as JSON Lines or CSV, streaming."""
    try:
        if fmt not in ("jsonl", "csv"):
            raise InputError(f"--format must be jsonl or csv, got {fmt!r}")
        flt = session_filter(parse_user_id(user) if user is not None else None, parse_time(since, "--since"), parse_time(until, "--until"))
    except InputError as exc:
        _fail(exc)
    cfg = config.load()
    coll = _collection(cfg)
    if str(output) == "-":
        n = export_sessions(coll, flt, sys.stdout, fmt, progress)
    else:
        with open(output, "w", newline="") as fh:
            n = export_sessions(coll, flt, fh, fmt, progress)
    typer.echo(f"exported {n} session(s)", err=True)


def user_history(coll, user_id: int) -> list[dict]:
    return list(coll.find(session_filter(user_id, None, None)).sort("start_time", 1))


@app.command()
def history(
    user: str = typer.Argument(..., help="User id (integer)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """Show a user's sessions and their predictions."""
    try:
        uid = parse_user_id(user)
    except InputError as exc:
        _fail(exc)
    docs = user_history(_collection(config.load()), uid)
    if fmt == "json":
        typer.echo(json_util.dumps(docs, json_options=json_util.RELAXED_JSON_OPTIONS, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"user {uid}: {len(docs)} session(s)")
    for col in ("session", "start", "last event", "events", "carts", "buys", "P(buy)", "top 3", "predictions", "models"):
        table.add_column(col)
    for d in docs:
        p = d.get("latest_prediction") or {}
        prob = p.get("purchase_probability")
        table.add_row(
            str(d["session_id"]),
            str(d.get("start_time")),
            str(d.get("last_event_time")),
            str(d.get("n_events")),
            str(d["counts"].get("cart", 0)),
            str(d["counts"].get("purchase", 0)),
            "-" if prob is None else f"{prob:.3f}",
            ", ".join(p.get("top3") or []),
            str(len(d.get("predictions") or [])),
            f"p{p.get('purchase_model_version')}/c{p.get('category_model_version')}",
        )
    Console().print(table)


def _receipt_table(title: str, receipts) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col, justify in (("store", "left"), ("found", "right"), ("removed", "right"), ("what remains", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in receipts:
        table.add_row(r.store, f"{r.found:,}", f"{r.removed:,}", r.remains)
    Console().print(table)


@app.command("delete-user")
def delete_user(
    user: str = typer.Argument(..., help="User id (integer) to erase."),
    retain_hours: float = typer.Option(
        None, help="VACUUM retention in hours (default: ERASURE_VACUUM_RETAIN_HOURS); 0 only when no stream is running."
    ),
    output_dir: Path = typer.Option(config.REPO_ROOT / "output", help="Folder of the CSV outputs to clean."),
    settle_seconds: float = typer.Option(
        15, help="Pause before sweeping the streams' stores again, for micro-batches begun before the erasure to commit; 0: one pass."
    ),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
) -> None:
    """Erase a user from every store (sessions, predictions, bronze, quarantine, marts, outputs, MLflow), with a receipt.

    The user joins the erasure register first: the ingest and the scorer then keep
    replayed records of the user out. Safe while the streams run.
    """
    try:
        uid = parse_user_id(user)
    except InputError as exc:
        _fail(exc)
    if not yes:
        typer.confirm(f"Erase every record of user {uid} from every store?", abort=True)
    from lakehouse.spark import get_spark
    from streaming.erasure import erase_user

    cfg = config.load()
    hours = float(cfg["ERASURE_VACUUM_RETAIN_HOURS"] if retain_hours is None else retain_hours)  # type: ignore[arg-type]
    spark = get_spark("session-admin", catalog=False, cfg=cfg)
    receipts = erase_user(spark, cfg, uid, retain_hours=hours, output_dir=output_dir, settle_seconds=settle_seconds)
    _receipt_table(f"erasure of user {uid}", receipts)


@app.command()
def vacuum(
    retain_hours: float = typer.Option(None, help="Retention in hours (default: ERASURE_VACUUM_RETAIN_HOURS)."),
) -> None:
    """VACUUM every lakehouse Delta table: removes the old files of erased rows once their retention has passed."""
    from lakehouse.spark import get_spark
    from streaming.erasure import vacuum as vacuum_tables

    cfg = config.load()
    hours = float(cfg["ERASURE_VACUUM_RETAIN_HOURS"] if retain_hours is None else retain_hours)  # type: ignore[arg-type]
    done = vacuum_tables(get_spark("session-admin", catalog=False, cfg=cfg), cfg, hours)
    typer.echo(f"vacuumed {len(done)} Delta table(s), keeping files removed in the last {hours:g} h")


@app.command()
def erasures() -> None:
    """List erased users, when, and when VACUUM may remove their rows' old files."""
    from rich.console import Console
    from rich.table import Table

    from streaming.erasure import erasures as erasure_rows

    table = Table(title="erasure register")
    for col in ("user", "erased at (UTC)", "old files removable after (UTC)"):
        table.add_column(col)
    for r in erasure_rows(config.load()):
        table.add_row(str(r["user_id"]), f"{r['erased_at']:%Y-%m-%d %H:%M:%S}", f"{r['vacuum_due_at']:%Y-%m-%d %H:%M:%S}")
    Console().print(table)


_EVENT_FIELDS = ["event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session"]
_TIMEOUT_SESSION = re.compile(r"^timeout-([0-9]{1,19})-([0-9]{14})$")


def _bronze_events(spark, cfg: config.Config, cond) -> list[dict]:
    """Normalised bronze events matching a Spark condition."""
    from streaming.session_features import normalise

    bronze = spark.read.format("delta").load(str(cfg.table_path("bronze", "events")))
    return [normalise(r.asDict()) for r in bronze.filter(cond).select(*_EVENT_FIELDS).collect()]


def sessions_in_range(spark, cfg: config.Config, start: datetime, end: datetime) -> dict[str, list[dict]]:
    """Every dbt session with an event in [start, end), with all its bronze events."""
    from datetime import timedelta

    from pyspark.sql import functions as F

    from streaming.session_features import split_sessions

    bronze = spark.read.format("delta").load(str(cfg.table_path("bronze", "events")))
    in_range = (F.col("event_time") >= F.lit(start)) & (F.col("event_time") < F.lit(end))
    keys = bronze.filter(in_range).select("user_session", "user_id").distinct()
    sess_ids = [r[0] for r in keys.filter(F.col("user_session").isNotNull()).select("user_session").collect()]
    null_users = [r[0] for r in keys.filter(F.col("user_session").isNull()).select("user_id").collect()]
    near = (F.col("event_time") >= F.lit(start - timedelta(days=1))) & (F.col("event_time") < F.lit(end + timedelta(days=1)))
    cond = F.col("user_session").isin(sess_ids) if sess_ids else F.lit(False)
    if null_users:
        cond = cond | (F.col("user_session").isNull() & F.col("user_id").isin(null_users) & near)
    events = _bronze_events(spark, cfg, cond)
    return {sid: evs for sid, evs in split_sessions(events).items() if any(start <= e["event_time"] < end for e in evs)}


def sessions_by_id(spark, cfg: config.Config, session_ids: set[str]) -> dict[str, list[dict]]:
    """The named dbt sessions with all their bronze events (ids bronze no longer has are left out).

    A ``timeout-<user>-<start>`` id (a session made from events without
    ``user_session``) is found among that user's session-less events of the day around
    its start.
    """
    from datetime import timedelta

    from pyspark.sql import functions as F

    from streaming.session_features import split_sessions

    shop = sorted(s for s in session_ids if not _TIMEOUT_SESSION.match(s))
    cond = F.col("user_session").isin(shop) if shop else F.lit(False)
    for sid in sorted(session_ids - set(shop)):
        user, stamp = _TIMEOUT_SESSION.match(sid).groups()  # type: ignore[union-attr]
        at = datetime.strptime(stamp, "%Y%m%d%H%M%S")
        near = (F.col("event_time") >= F.lit(at - timedelta(days=1))) & (F.col("event_time") < F.lit(at + timedelta(days=1)))
        cond = cond | (F.col("user_session").isNull() & (F.col("user_id") == F.lit(int(user))) & near)
    return {sid: evs for sid, evs in split_sessions(_bronze_events(spark, cfg, cond)).items() if sid in session_ids}


def session_ids_from_export(path: Path) -> set[str]:
    """Session ids of an ``export`` file (JSON Lines or CSV, told apart by the first character)."""
    with open(path, newline="") as fh:
        head = fh.read(1)
        fh.seek(0)
        if head == "{":
            ids = {str(json_util.loads(line)["session_id"]) for line in fh if line.strip()}
        else:
            reader = csv.DictReader(fh)
            if "session_id" not in (reader.fieldnames or []):
                raise InputError(f"{path} is neither a JSON Lines nor a CSV export (no session_id column)")
            ids = {row["session_id"] for row in reader if row["session_id"]}
    if not ids:
        raise InputError(f"{path} lists no sessions")
    return ids


def rescore_sessions(spark, cfg: config.Config, sessions: dict[str, list[dict]], versions: dict[str, str]) -> dict[str, int]:
    """Score sessions with chosen model versions, replacing their prediction rows and documents.

    Idempotent: the sessions' prediction rows are deleted and rewritten, their documents
    replaced whole (history = the reprocessed prediction), so a second run ends in the
    same state.
    """
    from delta.tables import DeltaTable
    from pymongo import ReplaceOne
    from pyspark.sql import functions as F

    from streaming.predictions import PredictionsWriter, ensure_predictions_table, predictions_path
    from streaming.scorer import ChampionModels, score_sessions
    from streaming.session_features import build_history

    models = ChampionModels(cfg.mlflow_uri, 0, pinned={k: v for k, v in versions.items() if v})
    models.refresh(force=True)
    rows, docs = score_sessions(
        sessions,
        build_history(spark, cfg.table_path("bronze", "events")),
        models,
        kafka_ts={},
        batch_id=-1,
        source="reprocess",
        history_cap=int(cfg["PREDICTION_HISTORY_CAP"]),
    )
    path = predictions_path(cfg)
    ensure_predictions_table(spark, path)
    if sessions:
        DeltaTable.forPath(spark, str(path)).delete(F.col("session_id").isin(list(sessions)))
    if len(rows):
        # a fresh app id per run: the rows must land even though batch -1 was written before
        PredictionsWriter(path).append(rows, f"reprocess:{datetime.now().isoformat()}", 0)
    if docs:
        ops = [ReplaceOne({"_id": d["_id"]}, stored_form(d), upsert=True) for d in docs]
        _collection(cfg).bulk_write(ops, ordered=False)
    return {"sessions": len(sessions), "prediction_rows": len(rows), "documents": len(docs)}


def reprocess_range(spark, cfg: config.Config, start: datetime, end: datetime, versions: dict[str, str]) -> dict[str, int]:
    """Re-score every session with an event in [start, end) from bronze."""
    return rescore_sessions(spark, cfg, sessions_in_range(spark, cfg, start, end), versions)


def reprocess_export(spark, cfg: config.Config, path: Path, versions: dict[str, str]) -> dict[str, int]:
    """Re-score the sessions listed in an export file; their events come from bronze.

    An export holds each session's last events only, not all of them, so bronze
    stays the source of the features; sessions erased from bronze are skipped and
    counted as ``missing``.
    """
    wanted = session_ids_from_export(path)
    sessions = sessions_by_id(spark, cfg, wanted)
    return {**rescore_sessions(spark, cfg, sessions, versions), "missing": len(wanted - set(sessions))}


@app.command()
def reprocess(
    start: str = typer.Option(None, help="Start of the event-time range (ISO, inclusive)."),
    end: str = typer.Option(None, help="End of the event-time range (ISO, exclusive)."),
    from_export: Path = typer.Option(
        None, "--from-export", help="Re-score the sessions listed in this export file (JSON Lines or CSV) instead of a time range."
    ),
    purchase_version: str = typer.Option(None, help="purchase_intent model version (default: the champion)."),
    category_version: str = typer.Option(None, help="category_top3 model version (default: the champion)."),
) -> None:
    """Re-score the sessions of a time range, or of an export file, from bronze with chosen model versions.

    Their prediction rows and session documents are replaced, so running it twice
    leaves the same state.
    """
    try:
        for name, v in (("--purchase-version", purchase_version), ("--category-version", category_version)):
            if v is not None and not re.fullmatch(r"[0-9]{1,9}", v):
                raise InputError(f"{name} must be a model version number, got {v!r}")
        if from_export is not None:
            if start or end:
                raise InputError("give either --from-export or --start/--end, not both")
            if not from_export.is_file():
                raise InputError(f"no such export file: {from_export}")
            session_ids_from_export(from_export)  # fail on a bad file before starting Spark
        else:
            s, e = parse_time(start, "--start"), parse_time(end, "--end")
            if s is None or e is None:
                raise InputError("give --start and --end (a time range), or --from-export FILE")
            if s >= e:
                raise InputError("--start must be before --end")
    except InputError as exc:
        _fail(exc)
    from lakehouse.spark import get_spark

    cfg = config.load()
    spark = get_spark("session-admin", catalog=False, cfg=cfg)
    versions = {"purchase": purchase_version, "category": category_version}
    by_file = from_export is not None
    result = reprocess_export(spark, cfg, from_export, versions) if by_file else reprocess_range(spark, cfg, s, e, versions)
    typer.echo(json.dumps(result))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
