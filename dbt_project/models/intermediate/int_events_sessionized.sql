-- Every staged event with the session it belongs to.
--
-- Rule: an event with a user_session belongs to that session. Events without one
-- (REES46 has a few) are sessionized per user by inactivity: a user's null-session
-- event more than `session_timeout_minutes` (default 30) after that user's previous
-- null-session event starts a new session, named
-- `timeout-<user_id>-<start yyyyMMddHHmmss>`. They are never dropped.
--
-- A table, not a view: every mart and feature reads it, and sessionizing (plus the
-- staging de-duplication under it) is the most expensive step of the project, so it
-- runs once per `dbt run`. Incremental (see macros/incremental.sql): the days from the
-- earliest date among the events that arrived in bronze since the last run are rebuilt
-- whole (REPLACE WHERE, one commit), the days before stay as they are. Events are read
-- `max_session_days` further back so that a null-session event early in the window
-- still sees the user's previous event.

{{
    config(
        tblproperties=delta_stats_on('ingested_at, event_time'),
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by=['event_date'],
        on_schema_change='fail',
        post_hook=["{{ record_arrivals(this) }}"],
    )
}}

{%- set window = arrival_window(source('bronze', 'events')) %}

with

events as (

    select * from {{ ref('stg_bronze__events') }}
    {% if is_incremental() %}
    -- a literal on bronze's partition column: pruned, and pushed below staging's window
    where event_date >= {{ window.read_start }}
    {% endif %}

),

with_shop_session as (

    select
        *,
        user_session as session_id,
        'user_session' as session_rule
    from events
    where user_session is not null

),

without_session as (

    select * from events
    where user_session is null

),

gaps as (

    select
        *,
        case
            when lag(event_time) over (partition by user_id order by event_time, event_id) is null then 1
            when
                unix_timestamp(event_time)
                - unix_timestamp(lag(event_time) over (partition by user_id order by event_time, event_id))
                > {{ var('session_timeout_minutes') }} * 60 then 1
            else 0
        end as is_session_start
    from without_session

),

numbered as (

    select
        *,
        sum(is_session_start) over (
            partition by user_id order by event_time, event_id rows between unbounded preceding and current row
        ) as user_session_number
    from gaps

),

timeout_sessions as (

    select
        * except (is_session_start, user_session_number),
        concat(
            'timeout-', cast(user_id as string), '-',
            date_format(
                min(event_time) over (partition by user_id, user_session_number), 'yyyyMMddHHmmss'
            )
        ) as session_id,
        'inactivity_timeout' as session_rule
    from numbered

),

unioned as (

    select * from with_shop_session
    union all
    select * from timeout_sessions

),

final as (

    select
        *,
        -- Funnel order, used to break ties between events with the same second.
        case event_type
            when 'view' then 1
            when 'cart' then 2
            when 'remove_from_cart' then 3
            when 'purchase' then 4
        end as event_type_rank
    from unioned

)

select * from final
{% if is_incremental() %}
-- only whole days inside the window are overwritten
where event_date >= {{ window.start }}
{% endif %}
