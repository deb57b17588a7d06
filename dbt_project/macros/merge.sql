{#-
    dbt-spark's merge, with the target pruned to the model's arrival window.

    A Delta MERGE first finds the target files that hold a matching key; with only
    the key in the ON clause that is a scan of the whole target, however few rows
    the run brings. A model whose rows are dated (meta `merge_prune_column`, its
    partition column) can only ever match target rows dated on or after the window's
    `read_start` (every session a run recomputes began then or later: see
    macros/incremental.sql), so that bound joins the ON clause and Delta reads only
    those partitions.
-#}
{% macro spark__get_merge_sql(target, source, unique_key, dest_columns, incremental_predicates) %}
    {%- set column = config.get('meta', {}).get('merge_prune_column') -%}
    {%- set predicates = [] + (incremental_predicates or []) -%}
    {%- if column -%}
        {%- do predicates.append('DBT_INTERNAL_DEST.' ~ column ~ ' >= ' ~ arrival_window().read_start) -%}
    {%- endif -%}
    {{ return(dbt.spark__get_merge_sql(target, source, unique_key, dest_columns, predicates)) }}
{% endmacro %}
