{#-
    The incremental window shared by every incremental mart.

    A run after the first recomputes everything whose inputs can have changed:
    all rows dated on or after (latest date already in the target - `lookback_days`).
    Late events dated inside that window are picked up; older late events need a
    `--full-refresh` (documented in the README). Sessions are re-aggregated from
    ALL their events, read from `max_session_days` further back, so a session that
    spans midnight is never cut in two.
-#}

{% macro window_start(date_column) -%}
    (select date_sub(max({{ date_column }}), {{ var('lookback_days') }}) from {{ this }})
{%- endmacro %}

{% macro events_read_start(date_column) -%}
    (select date_sub(max({{ date_column }}), {{ var('lookback_days') + var('max_session_days') }}) from {{ this }})
{%- endmacro %}
