-- depends_on: {{ ref('top_level_categories') }}
-- A user's history known at the start of each day: for every (user, day) with events,
-- totals over all EARLIER days (sessions started, events, purchases, spend, last event
-- time, events per top-level category). Features join it on the session's start day,
-- so "prior" means days before the session, never earlier the same day.

-- A table, not a view: both feature marts join it, and as a view the whole history
-- would be recomputed inside each of them (and inside each pass of their MERGE).
{{ config(materialized='table') }}

{% set categories = top_level_categories() %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

sessions as (

    select * from {{ ref('fct_sessions') }}

),

started as (

    select
        user_id,
        session_date as event_date,
        count(*) as sessions_started
    from sessions
    group by user_id, session_date

),

daily as (

    select
        user_id,
        event_date,
        count(*) as events,
        count_if(event_type = 'purchase') as purchases,
        coalesce(sum(case when event_type = 'purchase' then price end), 0) as spend,
        max(event_time) as last_event_time
        {%- for category in categories %},
        count_if(category_top = '{{ category }}') as events_{{ category }}
        {%- endfor %}
    from events
    group by user_id, event_date

),

joined as (

    select
        daily.*,
        coalesce(started.sessions_started, 0) as sessions_started
    from daily
    left join started on daily.user_id = started.user_id and daily.event_date = started.event_date

),

accumulated as (

    select
        user_id,
        event_date,
        coalesce(sum(sessions_started) over prior_days, 0) as prior_sessions,
        coalesce(sum(events) over prior_days, 0) as prior_events,
        coalesce(sum(purchases) over prior_days, 0) as prior_purchases,
        coalesce(sum(spend) over prior_days, 0) as prior_spend,
        max(last_event_time) over prior_days as prior_last_event_time
        {%- for category in categories %},
        coalesce(sum(events_{{ category }}) over prior_days, 0) as prior_events_{{ category }}
        {%- endfor %}
    from joined
    window prior_days as (partition by user_id order by event_date rows between unbounded preceding and 1 preceding)

)

select * from accumulated
