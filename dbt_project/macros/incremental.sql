{#-
    The incremental window shared by every incremental model.

    A run after the first recomputes everything whose inputs can have changed:
    all rows dated on or after (latest date already in the target - `lookback_days`).
    Late events dated inside that window are picked up; older late events need a
    `--full-refresh` (documented in the README). Sessions are re-aggregated from
    ALL their events, read from `max_session_days` further back, so a session that
    spans midnight is never cut in two.

    Both bounds are looked up with `run_query` when the model runs and written into
    the SQL as a date LITERAL. A scalar subquery (`select max(...) from this`) gives
    the same rows but Spark cannot use it to prune Delta partitions or skip files,
    nor push it below the staging view's de-duplication window: every incremental
    model would scan and de-duplicate all of bronze again.

    The merges take no `incremental_predicates`: dbt reads a model's config when it
    parses the project, before any date can be looked up, and Delta's MERGE condition
    takes no subquery. The big marts are partitioned by date instead, so a merge
    rewrites only the files of the days whose rows changed.
-#}

{% macro window_start(date_column) -%}
    {{ incremental_start_date(date_column, var('lookback_days')) }}
{%- endmacro %}

{% macro events_read_start(date_column) -%}
    {{ incremental_start_date(date_column, var('lookback_days') + var('max_session_days')) }}
{%- endmacro %}

{#- date'yyyy-MM-dd' = (latest `date_column` in this model's table - `days_back`). -#}
{% macro incremental_start_date(date_column, days_back) -%}
    {%- set start = none -%}
    {%- if execute and is_incremental() -%}
        {%- set query -%}
            select cast(date_sub(max({{ date_column }}), {{ days_back }}) as string) from {{ this }}
        {%- endset -%}
        {%- set start = run_query(query).columns[0].values()[0] -%}
    {%- endif -%}
    {#- Parse time (never run), or an empty table: from the beginning, like a full refresh. -#}
    date'{{ start or "0001-01-01" }}'
{%- endmacro %}

{#-
    Pre-hook of the marts keyed by session: delete the rows of sessions that no longer
    exist. A late null-session event can fill the gap between two inactivity sessions,
    which then become one, named after the earlier; a merge only inserts and updates,
    so the later session's rows would stay. Such a session had only events after the
    late one, so its rows are dated inside the window; and every row dated there has
    an event on that date, carrying its current session id, in int_events_sessionized.
-#}
{% macro delete_vanished_sessions(date_column) -%}
    {%- if is_incremental() -%}
        {%- set start = window_start(date_column) -%}
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
