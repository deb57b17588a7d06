{#-
    The order of a session's events: by time, ties broken by funnel order (view, cart,
    remove, purchase), then product and event id, so that every model numbers a
    session's events, and picks its first and last one, the same way.
-#}
{% macro session_event_order() -%}
    event_time, event_type_rank, product_id, event_id
{%- endmacro %}

{#-
    The windows over a session's events in that order: `in_order` (for row_number and
    lag), `whole_session` (every event of the session, for its aggregates and first and
    last values) and, with so_far=true, `so_far` (events 1..k, for running aggregates).
    One sort serves them all, and a query whose input is already in this order (the
    `ordered` CTE below, filtered or not) is not sorted again: ordering by `event_seq`
    instead would give the same frames but cost a second sort of every event.
-#}
{% macro session_windows(so_far=false) -%}
    window
        in_order as (partition by session_id order by {{ session_event_order() }}),
        {%- if so_far %}
        so_far as (
            partition by session_id order by {{ session_event_order() }}
            rows between unbounded preceding and current row
        ),
        {%- endif %}
        whole_session as (
            partition by session_id order by {{ session_event_order() }}
            rows between unbounded preceding and unbounded following
        )
{%- endmacro %}

{#-
    CTEs `events` and `session_events`: every event of the sessions to compute. A full
    build takes all of them; an incremental run those of the sessions that `touched`
    (a query of session ids, which may read `events`) selects, from `window.read_start`
    on, so that a session reaching into the window is read whole.
-#}
{% macro session_events(window, touched) %}

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}
    {% endif %}

),

{% if is_incremental() %}
touched_sessions as (

    {{ touched }}

),

session_events as (

    select {{ broadcast_if_small('touched_sessions', window) }} events.* from events
    inner join touched_sessions on events.session_id = touched_sessions.session_id

),
{% else %}
session_events as (

    select * from events

),
{% endif %}

{%- endmacro %}

{#-
    Whether event number `seq` of a session lies within the first K (var
    intent_prediction_points): only such an event can be followed by a prediction point.
-#}
{% macro within_point_limit(seq='event_seq') -%}
    {{ seq }} <= {{ var('intent_prediction_points') }}
{%- endmacro %}

{#-
    CTEs `session_events` (incremental runs take the sessions with an event dated in
    `window`, from `arrival_window()`) and `ordered` (those events with event_seq =
    position in the session, in `session_event_order()`, the session's user, start
    and start date, and `is_prediction_point`). Shared by both ML feature marts so that
    their prediction points are the same rows. `whole_session` maps column names to
    aggregates over all of the session's events, computed in this pass: a mart that
    needs only events 1..K for its running features can then drop the later events
    before its own windows (`where {{ within_point_limit() }}`).

    The prediction-point rule, stated here only: the point just after event k exists
    for k = 1..var intent_prediction_points (K) while the session has no purchase among
    events 1..k. A point at or after the first purchase would ask "will a session that
    has bought buy?", which a multi-item order (several purchase rows in one second)
    answers for free; a shop acts before the purchase. The live scorer applies the same
    rule (streaming.session_features.last_point) with the same K, which Python reads
    from dbt_project.yml (ml.feature_contract.prediction_points).
-#}
{% macro ordered_session_events(window, whole_session={}) %}

{{ session_events(window, 'select distinct session_id from events where event_date >= ' ~ window.start) }}

ordered as (

    select
        *,
        row_number() over in_order as event_seq,
        -- in_order's default frame runs from the session's first event to this one
        -- (its order is unique per event), so the sum counts purchases among events 1..k
        {{ within_point_limit('row_number() over in_order') }}
            and sum(cast(event_type = 'purchase' as int)) over in_order = 0 as is_prediction_point,
        -- the session's user and start as fct_sessions has them (its first event's), from
        -- this same pass: joining fct_sessions would shuffle every event once more
        first_value(user_id) over whole_session as session_user_id,
        first_value(event_time) over whole_session as session_start,
        cast(first_value(event_time) over whole_session as date) as session_date
        {%- for name, aggregate in whole_session.items() %},
        {{ aggregate }} over whole_session as {{ name }}
        {%- endfor %}
    from session_events
    {{ session_windows() }}

)

{% endmacro %}
