{#-
    Table properties that limit Delta's per-file statistics to `columns` (a comma-
    separated list): the columns that queries filter on, so that Delta can still skip
    files by them.

    Why: by default Delta computes min, max and null count of the first 32 columns for
    every file it writes. On this project's wide tables that is a fifth of each write
    (10 M sessionized events: 33.5 s with the default, 25.1 s with no statistics), and
    nothing filters on most of those columns: dates are partition columns, and the
    merges prune by partition (`merge_prune_column`).

    Applies when dbt creates the table (the first run or `--full-refresh`); an existing
    table keeps the statistics it was created with until then.
-#}
{% macro delta_stats_on(columns) -%}
    {{ return({'delta.dataSkippingStatsColumns': columns}) }}
{%- endmacro %}

{#-
    `properties` (a dict of table properties, e.g. from delta_stats_on) with deletion
    vectors on: a MERGE then marks the rows it replaces instead of rewriting every file
    that holds one. For the ML feature marts, whose next-day MERGE updates a few hundred
    rows of the previous day (sessions that ran past midnight) spread over all of that
    day's files, and would otherwise copy the whole day. Erasure purges the marked rows
    (streaming/erasure.py, REORG ... APPLY (PURGE)) before it vacuums.
-#}
{% macro with_deletion_vectors(properties) -%}
    {%- do properties.update({'delta.enableDeletionVectors': 'true'}) -%}
    {{ return(properties) }}
{%- endmacro %}
