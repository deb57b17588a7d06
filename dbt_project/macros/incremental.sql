{#-
    Incremental runs recompute what ARRIVED since the model's last run, whatever its date.

    Each incremental model records in a table property of its own Delta table
    (`arrivals_property()`) the newest `ingested_at` among the events it has
    consumed. The next run looks up the events ingested after that instant in its
    upstream (bronze for int_events_sessionized, int_events_sessionized for the marts)
    and recomputes from the earliest date among them:

    * `window.start`: first date whose rows can change = the earliest event date that
      arrived. date'9999-12-31' when nothing arrived (the run changes nothing).
    * `window.read_start`: `max_session_days` earlier, so that a session reaching into
      the window is re-aggregated from all of its events, and a null-session event
      still sees the user's previous one.
    * `window.arrived_after`: the watermark, for models that recompute only what the
      sessions that received events touch (fct_sessions, dim_users, fct_product_funnel;
      see `arrived_sessions`).

    A late event is picked up however old its date is (no lookback to tune), and a run
    after a small load reads only the days that load touched.

    Bounds are looked up with `run_query` while the model compiles, and written into
    the SQL as literals: a scalar subquery gives the same rows, but Spark cannot use it
    to prune Delta partitions, skip files, or push it below the staging view's
    de-duplication window.

    The watermark is recorded by a post-hook (`record_arrivals`), from the relation the
    model consumed, so an event that lands during the run is not marked as seen.
    Ordering assumption: bronze commits land in `ingested_at` order. The streaming ingest
    stamps each micro-batch after the previous one committed, so one writer keeps it.
    With two writers at once (a large backfill next to the stream), a commit can land
    after a later-stamped one: set var `arrival_margin_minutes` to the longest such lag,
    or run `dbt run --full-refresh` after the backfill.
-#}

{#- Name of the table property that holds a model's watermark. -#}
{% macro arrivals_property() -%}
    {{ return('clickstream.arrivals_through') }}
{%- endmacro %}

{#-
    The window of this model's run (see above).
    `arrivals`: where new events show up; int_events_sessionized unless given.
    Computed once per model and invocation (`invocation_memo`): the model's SQL, its
    hooks and its write (`incremental_writes.sql`) all ask for it, and each look-up
    costs a query.
-#}
{% macro arrival_window(arrivals=none) -%}
    {%- set window = {
        'start': "date'0001-01-01'",
        'read_start': "date'0001-01-01'",
        'arrived_after': "timestamp'0001-01-01 00:00:00'",
    } -%}
    {#- outside the `execute` branch: dbt records the dependency while it parses -#}
    {%- set arrivals = arrivals or ref('int_events_sessionized') -%}
    {%- if execute and is_incremental() -%}
        {%- set memo = invocation_memo() -%}
        {%- set key = 'window ' ~ this ~ ' ' ~ arrivals -%}
        {%- if key not in memo -%}
            {%- do memo.update({key: _look_up_window(window, arrivals), 'window ' ~ this: window}) -%}
        {%- endif -%}
        {{ return(memo[key]) }}
    {%- endif -%}
    {{ return(window) }}
{%- endmacro %}

{#-
    A dict that lives for one dbt invocation, shared by its models and threads: look-ups
    that several models ask for (a watermark, the category list) run one query per run.
    It hangs off `graph`, which dbt builds anew for every invocation; the key holds the
    invocation id as well, for callers that run dbt several times in one process.
-#}
{% macro invocation_memo() -%}
    {{ return(graph.setdefault('clickstream_memo ' ~ invocation_id, {})) }}
{%- endmacro %}

{#- True when the running model's window (from `arrival_window`, this invocation) says nothing arrived. -#}
{% macro model_unchanged() -%}
    {%- set window = invocation_memo().get('window ' ~ this) if execute else none -%}
    {{ return(window is not none and nothing_arrived(window)) }}
{%- endmacro %}

{#- The look-up behind `arrival_window`: fills `window` from the recorded watermarks and `arrivals`. -#}
{% macro _look_up_window(window, arrivals) -%}
    {%- set through = arrivals_through(this) -%}
    {%- set since = "timestamp'" ~ through ~ "' - interval " ~ var('arrival_margin_minutes') ~ " minutes"
        if through else "timestamp'0001-01-01 00:00:00'" -%}
    {%- do window.update({'arrived_after': since}) -%}
    {%- if through and through == arrivals_through(arrivals) -%}
        {#- the upstream model has consumed nothing newer than this one: no query -#}
        {%- do window.update({'start': "date'9999-12-31'", 'read_start': "date'9999-12-31'"}) -%}
        {{ return(window) }}
    {%- endif -%}
    {%- set query -%}
        select
            cast(min(event_date) as string),
            cast(date_sub(min(event_date), {{ var('max_session_days') }}) as string)
        from {{ arrivals }}
        where ingested_at > {{ since }}
    {%- endset -%}
    {#- Models recorded the same watermark in their last run (the usual case) ask the same
        question of the same relation: one query per invocation answers all of them. -#}
    {%- set memo = invocation_memo() -%}
    {%- set key = 'window query ' ~ query -%}
    {%- if key not in memo -%}
        {%- set answer = run_query(query).rows[0] -%}
        {%- do memo.update({key: [answer[0], answer[1]]}) -%}
    {%- endif -%}
    {%- set row = memo[key] -%}
    {%- do window.update({
        'start': "date'" ~ (row[0] or '9999-12-31') ~ "'",
        'read_start': "date'" ~ (row[1] or '9999-12-31') ~ "'",
    }) -%}
    {{ return(window) }}
{%- endmacro %}

{#- True when nothing arrived since the model's last run: `window.start` is then 9999-12-31. -#}
{% macro nothing_arrived(window) -%}
    {{ return(window.start == "date'9999-12-31'") }}
{%- endmacro %}

{#-
    The recorded watermark of `relation` (a string), or none before its first recording.
    Read once per invocation: every model after int_events_sessionized asks for that
    one's, and `record_arrivals` keeps the memo in step with what it writes.
-#}
{% macro arrivals_through(relation) -%}
    {%- set memo = invocation_memo() -%}
    {%- set key = 'arrivals_through ' ~ relation -%}
    {%- if key not in memo -%}
        {%- do memo.update({key: _read_arrivals_through(relation)}) -%}
    {%- endif -%}
    {{ return(memo[key]) }}
{%- endmacro %}

{% macro _read_arrivals_through(relation) -%}
    {%- for row in run_query('show tblproperties ' ~ relation).rows -%}
        {%- if row[0] == arrivals_property() -%}
            {{ return(row[1]) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(none) }}
{%- endmacro %}

{#-
    Post-hook: record the newest `ingested_at` of `consumed`, the relation whose events
    this run has read to the end: int_events_sessionized unless given, whose own recorded
    watermark is that (it does not change while the models after it run). That model
    itself passes `this`: bronze may have grown while it ran, but what it holds it has seen.
-#}
{% macro record_arrivals(consumed=none) -%}
    {%- set upstream = consumed is none -%}
    {%- set consumed = consumed or ref('int_events_sessionized') -%}
    {%- if not upstream and model_unchanged() -%}
        {#- this run wrote nothing, so the table's newest row is the recorded one -#}
        {{ return('') }}
    {%- endif -%}
    {%- if execute -%}
        {%- set recorded = arrivals_through(this) -%}
        {%- set newest = arrivals_through(consumed) if upstream else none -%}
        {%- if not newest -%}
            {#- Only rows newer than the recorded watermark can raise it: Delta skips every
                file whose ingested_at statistics end before it (all of them when nothing
                arrived), instead of reading the whole column. -#}
            {%- set newer = " where ingested_at > timestamp'" ~ recorded ~ "'" if recorded and is_incremental() else "" -%}
            {%- set newest = run_query('select cast(max(ingested_at) as string) from ' ~ consumed ~ newer).rows[0][0] or recorded -%}
        {%- endif -%}
        {%- if newest and newest != recorded -%}
            {%- do invocation_memo().update({'arrivals_through ' ~ this: newest}) -%}
            alter table {{ this }} set tblproperties ('{{ arrivals_property() }}' = '{{ newest }}')
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#-
    A join hint for the small side of an incremental run's look-up: `/*+ BROADCAST(alias) */`
    when the window holds at most var `broadcast_window_events` events (those dated from
    `window.start` on in int_events_sessionized), else nothing.

    The keys a run looks up (the sessions that received events, their users or products,
    the keys of the days it accumulates) are few; the history it looks them up in is
    large. Spark sizes a filtered Delta scan as the whole table, so it plans a sort-merge
    join and shuffles the whole history by key to meet a few keys; broadcast, the keys go
    to every task and the history is filtered as it is read. Each such side has at most
    one row per event dated from `start` on, so that count bounds what is broadcast; past
    the bound (a backfill, a late run over many days) Spark plans the join as before.
    The count comes from the files' row counts, one query per window start and invocation.
-#}
{% macro broadcast_if_small(alias, window) -%}
    {%- set events = ref('int_events_sessionized') -%}
    {%- if not (execute and is_incremental()) or nothing_arrived(window) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set memo = invocation_memo() -%}
    {%- set key = 'window events ' ~ window.start -%}
    {%- if key not in memo -%}
        {%- set query = 'select count(*) from ' ~ events ~ ' where event_date >= ' ~ window.start -%}
        {%- do memo.update({key: run_query(query).rows[0][0]}) -%}
    {%- endif -%}
    {%- if memo[key] <= var('broadcast_window_events') -%}
        {{ return('/*+ BROADCAST(' ~ alias ~ ') */') }}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}

{#-
    The sessions that received events since the model's last run. A late event that
    joins two inactivity sessions is in the joined one, which therefore holds every
    event whose session changed.
-#}
{% macro arrived_sessions(window) -%}
    select distinct session_id from {{ ref('int_events_sessionized') }}
    where event_date >= {{ window.start }} and ingested_at > {{ window.arrived_after }}
{%- endmacro %}

{#-
    The distinct `key` values (user_id, product_id, ...) of all events in the sessions
    that received events: what a model keyed by `key` must recompute. Not only the
    arrived events' own keys: a late event can join two sessions, or become a session's
    first event and so change the session's user.
-#}
{% macro arrived_session_keys(key, window) -%}
    select {{ broadcast_if_small('arrived', window) }} distinct events.{{ key }} from {{ ref('int_events_sessionized') }} as events
    left semi join ({{ arrived_sessions(window) }}) as arrived on events.session_id = arrived.session_id
    where events.event_date >= {{ window.read_start }}
{%- endmacro %}

{#-
    Pre-hook of the marts keyed by session: delete the rows of sessions that no longer
    exist. A late null-session event can fill the gap between two inactivity sessions,
    which then become one, named after the earlier; a merge only inserts and updates,
    so the later session's rows would stay. Such a session had only events on or after
    the late one's date, so its rows are dated inside the window; and every row dated
    there has an event on that date, carrying its current session id, in
    int_events_sessionized.

    The ML feature marts need no such delete: they replace every date from `start` on
    (`replace_days_then_merge`, macros/incremental_writes.sql).
-#}
{% macro delete_vanished_sessions(date_column) -%}
    {%- set window = arrival_window() if is_incremental() else none -%}
    {%- if window and not nothing_arrived(window) -%}  {#- nothing arrived: no session vanished -#}
        {%- set start = window.start -%}
        merge into {{ this }} as target
        using (
            select session_id from {{ this }} where {{ date_column }} >= {{ start }}
            except
            select session_id from {{ ref('int_events_sessionized') }} where event_date >= {{ start }}
        ) as vanished
        on target.session_id = vanished.session_id and target.{{ date_column }} >= {{ start }}
        when matched then delete
    {%- endif -%}
{%- endmacro %}
