{#-
    The top-level categories of the `top_level_categories` seed, in sort order.
    Feature and target columns are generated from it, so adding a category is a
    one-line seed change (plus the contract columns in _ml_features.yml, which a
    unit test keeps in step with the seed).
-#}
{% macro top_level_categories() %}
    {% if execute %}
        {% set rows = run_query('select category_top from ' ~ ref('top_level_categories') ~ ' order by sort_order') %}
        {{ return(rows.columns[0].values() | list) }}
    {% endif %}
    {{ return([]) }}
{% endmacro %}

{#-
    CTEs `session_events` (every event of the sessions to compute; incremental runs
    take the sessions with an event dated in `window`, from `arrival_window()`)
    and `ordered` (those events with event_seq = position in the session, ties broken
    by funnel order, product and event id). Shared by both ML feature marts so that
    their prediction points are the same rows.
-#}
{% macro ordered_session_events(window) %}

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}
    {% endif %}

),

{% if is_incremental() %}
touched_sessions as (

    select distinct session_id from events
    where event_date >= {{ window.start }}

),

session_events as (

    select events.* from events
    inner join touched_sessions on events.session_id = touched_sessions.session_id

),
{% else %}
session_events as (

    select * from events

),
{% endif %}

ordered as (

    select
        *,
        row_number() over (
            partition by session_id order by event_time, event_type_rank, product_id, event_id
        ) as event_seq
    from session_events

)

{% endmacro %}
