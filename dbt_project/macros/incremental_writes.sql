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
      joins the ON clause and Delta reads only those partitions.
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
    {%- set column = config.get('meta', {}).get('merge_prune_column') -%}
    {%- set predicates = [] + (incremental_predicates or []) -%}
    {%- if column -%}
        {%- do predicates.append('DBT_INTERNAL_DEST.' ~ column ~ ' >= ' ~ window.read_start) -%}
    {%- endif -%}
    {{ return(dbt.spark__get_merge_sql(target, source, unique_key, dest_columns, predicates)) }}
{% endmacro %}

{% macro get_insert_overwrite_sql(source_relation, target_relation, existing_relation) %}
    {%- set arrivals = source('bronze', 'events') if model.name == 'int_events_sessionized' else none -%}
    {%- set window = arrival_window(arrivals) -%}
    {%- if nothing_arrived(window) -%}
        {{ return(unchanged_statement()) }}
    {%- endif -%}
    {%- set column = config.get('partition_by') -%}
    {%- set column = column if column is string else column[0] -%}
    {%- set bound = window[config.get('meta', {}).get('rebuilds_from', 'start')] -%}
    {%- set columns = adapter.get_columns_in_relation(target_relation) | map(attribute='quoted') | join(', ') -%}
    insert into table {{ target_relation }} replace where {{ column }} >= {{ bound }}
    select {{ columns }} from {{ source_relation }}
{% endmacro %}

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
