{#-
    The write step of dbt-spark's incremental strategies, made aware of the model's
    arrival window (macros/incremental.sql).

    * Nothing arrived since the model's last run (window.start = 9999-12-31): the write
      is skipped. dbt-spark would otherwise still run the model's query and a MERGE or
      INSERT OVERWRITE with no rows, and Spark does not always see that they are empty
      before it has scanned the inputs (10-15 s per model at 10 M events).
    * merge: a Delta MERGE first finds the target files that hold a matching key; with
      only the key in the ON clause that is a scan of the whole target, however few
      rows the run brings. A model whose rows are dated (meta `merge_prune_column`, its
      partition column) can only match target rows dated on or after the window's
      `read_start` (every session a run recomputes began then or later), so that bound
      joins the ON clause and Delta reads only those partitions. The ML feature marts
      (meta `replaces_days_from_start`) replace most of their window instead and merge
      only its first rows (`replace_days_then_merge`, below).
    * insert_overwrite: the rows dated from the window's `start` (or `read_start`, meta
      `rebuilds_from`) on are replaced with the run's rows in one Delta commit
      (`INSERT INTO ... REPLACE WHERE <partition column> >= <bound>`). dbt-spark's
      dynamic partition overwrite replaces only the partitions the run writes to, so a
      day whose rows all moved to another day (a session whose start moved earlier)
      would keep its old rows; and Delta checks that every written row is in the bound.
-#}

{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set window = arrival_window() -%}
    {%- if nothing_arrived(window) -%}
        {{ return(unchanged_statement()) }}
    {%- endif -%}
    {%- set meta = config.get('meta', {}) -%}
    {%- set column = meta.get('merge_prune_column') -%}
    {%- if meta.get('replaces_days_from_start') -%}
        {{ return(replace_days_then_merge(target, source, unique_key, window, column)) }}
    {%- endif -%}
    {%- set predicates = [] + (incremental_predicates or []) -%}
    {%- if column -%}
        {%- do predicates.append('DBT_INTERNAL_DEST.' ~ column ~ ' >= ' ~ window.read_start) -%}
    {%- endif -%}
    {{ return(dbt.spark__get_merge_sql(target, source, unique_key, dest_columns, predicates)) }}
{% endmacro %}

{#-
    The write of the ML feature marts (meta `replaces_days_from_start`). Their runs
    recompute every session with an event dated on or after the window's `start`, so the
    run's rows hold every row dated from `start` on: those dates are replaced in one Delta
    commit (REPLACE WHERE), which neither reads nor joins the rows it replaces. The run's
    rows dated earlier belong to the few sessions that began before `start` and reach into
    it (they cross midnight); those are merged by key within [`read_start`, `start`). A
    MERGE of every row of the run would join them all with the table's rows of those
    dates, and needs a pre-hook that deletes the rows of vanished sessions and of points a
    late purchase ended, another pass over the same dates.

    Why the earlier-dated rows need no delete: every arrived event is dated `start` or
    later (that is how `start` is chosen), so it sorts after every event dated before. A
    point dated before `start` keeps its events 1..k, its history and its existence (a late
    purchase ends only the points after it); only what the session does after the point
    (the labels) can change, which the merge updates. A session that vanished (joined to
    an earlier one by a late event) had only events from `start` on, so only rows that
    the replace drops.

    The run's rows are cached for the two statements, so their query runs once;
    `release_cached_rows` (post-hook) frees them. A run that fails before it leaves them
    cached in the session; Spark evicts cached blocks when a query needs the memory, so
    they cost memory, not correctness. Two commits: between them a reader sees
    the new rows from `start` on beside the earlier rows of midnight-crossing sessions as
    the last run left them. A failure between them leaves the watermark where it was
    (`record_arrivals` is a later post-hook), so the next run writes both again.
-#}
{% macro replace_days_then_merge(target, source, unique_key, window, column) %}
    {%- call statement('cache_run_rows') -%}
        cache table {{ source }}
    {%- endcall -%}
    {%- do invocation_memo().update({'cached rows ' ~ this: source}) -%}
    {%- set from_start = '(select * from ' ~ source ~ ' where ' ~ column ~ ' >= ' ~ window.start ~ ')' -%}
    {%- call statement('replace_days') -%}
        {{ replace_dates_sql(target, from_start, column, window.start) }}
    {%- endcall -%}
    {%- set earlier = '(select * from ' ~ source ~ ' where ' ~ column ~ ' < ' ~ window.start ~ ')' -%}
    {%- set predicates = [
        'DBT_INTERNAL_DEST.' ~ column ~ ' >= ' ~ window.read_start,
        'DBT_INTERNAL_DEST.' ~ column ~ ' < ' ~ window.start,
    ] -%}
    {{ return(dbt.spark__get_merge_sql(target, earlier, unique_key, none, predicates)) }}
{% endmacro %}

{#- Post-hook of the models written by `replace_days_then_merge`: free the rows it cached in this run, if it did. -#}
{% macro release_cached_rows() -%}
    {%- set cached = invocation_memo().pop('cached rows ' ~ this, none) if execute else none -%}
    {%- if cached is not none -%}
        uncache table if exists {{ cached }}
    {%- endif -%}
{%- endmacro %}

{% macro get_insert_overwrite_sql(source_relation, target_relation, existing_relation) %}
    {%- set arrivals = source('bronze', 'events') if model.name == 'int_events_sessionized' else none -%}
    {%- set window = arrival_window(arrivals) -%}
    {%- if nothing_arrived(window) -%}
        {{ return(unchanged_statement()) }}
    {%- endif -%}
    {%- set column = config.get('partition_by') -%}
    {%- set column = column if column is string else column[0] -%}
    {%- set bound = window[config.get('meta', {}).get('rebuilds_from', 'start')] -%}
    {{ return(replace_dates_sql(target_relation, source_relation, column, bound)) }}
{% endmacro %}

{#-
    The statement that replaces the rows of `target` dated (`column`) from `bound` on with
    the rows of `source` (a relation or a parenthesized query), in one Delta commit; Delta
    refuses the write if a row of `source` lies outside the bound.
-#}
{% macro replace_dates_sql(target, source, column, bound) -%}
    {%- set columns = adapter.get_columns_in_relation(target) | map(attribute='quoted') | join(', ') -%}
    insert into table {{ target }} replace where {{ column }} >= {{ bound }}
    select {{ columns }} from {{ source }}
{%- endmacro %}

{#- What runs instead of a write that has nothing to write (dbt needs a statement). -#}
{% macro unchanged_statement() -%}
    {{ return("select 'unchanged: nothing arrived since the last run' as status") }}
{%- endmacro %}

{#-
    Post-hook of every model (dbt_project.yml), a statement only after an insert_overwrite
    one. dbt-spark switches the session to dynamic partition overwrite for that strategy
    and leaves it so (our REPLACE WHERE write does not need it); this restores Spark's
    default, because callers that run dbt in-process (the pipeline, the tests) share the
    session, and their own `mode("overwrite")` writes would otherwise replace only some
    partitions. Set once for the project, so a new model cannot forget it; an empty hook
    runs no statement.
-#}
{% macro restore_static_partition_overwrite() -%}
    {%- if config.get('incremental_strategy') == 'insert_overwrite' -%}
        set spark.sql.sources.partitionOverwriteMode = STATIC
    {%- endif -%}
{%- endmacro %}

{#-
    Nothing arrived since the model's last run, so its write is skipped (above) and two
    steps of dbt-spark's incremental materialization have nothing to guard: the temporary
    view of the model's rows (its query is analysed over every input table) becomes a
    one-row placeholder, and the comparison of the model's columns with the table's
    (`on_schema_change`) is left to the next run that writes. A changed model is applied
    by `dbt run --full-refresh`, as before.
-#}
{% macro spark__create_temporary_view(relation, compiled_code) -%}
    {%- if model_unchanged() -%}
        create or replace temporary view {{ relation }} as {{ unchanged_statement() }}
    {%- else -%}
        {{ dbt.spark__create_temporary_view(relation, compiled_code) }}
    {%- endif -%}
{%- endmacro %}

{% macro spark__process_schema_changes(on_schema_change, source_relation, target_relation) -%}
    {%- if model_unchanged() -%}
        {{ return({}) }}
    {%- endif -%}
    {{ return(dbt.default__process_schema_changes(on_schema_change, source_relation, target_relation)) }}
{%- endmacro %}
