-- depends_on: {{ ref('top_level_categories') }}
-- A user's history known at the start of each day: for every (user, day) with events,
-- totals over all EARLIER days (sessions started, events, purchases, spend, last event
-- time, events per top-level category), and the day's own numbers. Features join it on
-- the session's start day, so "prior" means days before the session, never earlier the
-- same day.

-- A table, not a view: both feature marts join it, and as a view the whole history
-- would be recomputed inside each of them (and inside each pass of their MERGE).
-- Incremental: the days from the window start are replaced (REPLACE WHERE) from
-- their events and the users' last rows before the window (macros/accumulate.sql).

{{ config(tblproperties=delta_stats_on('user_id')) }}

{% set categories = top_level_categories() %}
{%- set window = arrival_window() %}
{#- (the day's own number, its total over earlier days, type) -#}
{%- set additive = [
    ('sessions_started', 'prior_sessions', 'bigint'), ('events', 'prior_events', 'bigint'),
    ('purchases', 'prior_purchases', 'bigint'), ('spend', 'prior_spend', 'decimal(18, 2)'),
] %}
{%- for category in categories %}
{%- do additive.append(('events_' ~ category, 'prior_events_' ~ category, 'bigint')) %}
{%- endfor %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.start }}
    {% endif %}

),

sessions as (

    select * from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
    where session_date >= {{ window.start }}
    {% endif %}

),

started as (

    select
        user_id,
        session_date as event_date,
        count(*) as sessions_started
    from sessions
    group by user_id, session_date

),

event_days as (

    select
        user_id,
        event_date,
        count(*) as events,
        count_if(event_type = 'purchase') as purchases,
        -- decimal: an incremental run adds the totals in another order than a full build
        cast(coalesce(sum(case when event_type = 'purchase' then cast(price as decimal(12, 2)) end), 0) as decimal(18, 2))
            as spend,
        max(event_time) as last_event_time
        {%- for category in categories %},
        count_if(category_top = '{{ category }}') as events_{{ category }}{% endfor %}
    from events
    group by user_id, event_date

),

daily as (

    select
        event_days.*,
        coalesce(started.sessions_started, 0) as sessions_started
    from event_days
    left join started on event_days.user_id = started.user_id and event_days.event_date = started.event_date

),

{{ days_accumulated('user_id', additive, [('last_event_time', 'prior_last_event_time')], window) }}

select * from accumulated
