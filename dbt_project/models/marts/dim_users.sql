-- depends_on: {{ ref('top_level_categories') }}
-- One row per user: session and purchase history, spend, first/last seen and the
-- three top-level categories the user interacted with most (by events; ties broken
-- by category name). Incremental: the users with an event in a session that received
-- events since the last run are rebuilt from all their sessions.

-- The category counts come from int_users_days_accumulated, not from the events: a
-- user's last day there holds the events per category of all earlier days plus its
-- own, so a user is counted without reading the user's history, and an incremental run
-- reads only the days from read_start (a touched user has an event there, so the
-- user's last day is among them). Its columns are the top_level_categories seed's;
-- the relationships test on fct_funnel_category_daily fails on any other category.

{{
    config(
        tblproperties=delta_stats_on('user_id'),
        unique_key='user_id',
    )
}}

{% set categories = top_level_categories() %}
{%- set window = arrival_window() %}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

{% if is_incremental() %}
touched_users as (

    {{ arrived_session_keys('user_id', window) }}

),

user_sessions as (

    select {{ broadcast_if_small('touched_users', window) }} sessions.* from sessions
    inner join touched_users on sessions.user_id = touched_users.user_id

),

user_days as (

    select {{ broadcast_if_small('touched_users', window) }} user_days.* from {{ ref('int_users_days_accumulated') }} as user_days
    left semi join touched_users on user_days.user_id = touched_users.user_id
    where user_days.event_date >= {{ window.read_start }}

),
{% else %}
user_sessions as (

    select * from sessions

),

user_days as (

    select * from {{ ref('int_users_days_accumulated') }}

),
{% endif %}

history as (

    select
        user_id,
        count(*) as sessions,
        sum(reached_purchase) as purchase_sessions,
        sum(n_purchases) as purchases,
        cast(sum(revenue) as decimal(18, 2)) as total_spend,
        sum(n_events) as events,
        min(session_start) as first_seen,
        max(session_end) as last_seen
    from user_sessions
    group by user_id

),

category_totals as (

    -- the user's last day: its totals over earlier days plus its own numbers
    select
        user_id
        {%- for category in categories %},
        max_by(prior_events_{{ category }} + events_{{ category }}, event_date) as events_{{ category }}{% endfor %}
    from user_days
    group by user_id

),

category_counts as (

    select
        user_id,
        category_top,
        n_events,
        row_number() over (partition by user_id order by n_events desc, category_top asc) as category_rank
    from category_totals
        lateral view stack(
            {{ categories | length }}
            {%- for category in categories %},
            '{{ category }}', events_{{ category }}
            {%- endfor %}
        ) per_category as category_top, n_events
    where n_events > 0

),

favourites as (

    select
        user_id,
        max(case when category_rank = 1 then category_top end) as favourite_category_1,
        max(case when category_rank = 2 then category_top end) as favourite_category_2,
        max(case when category_rank = 3 then category_top end) as favourite_category_3,
        count(*) as n_distinct_top_categories
    from category_counts
    group by user_id

),

final as (

    select
        history.user_id,
        history.sessions,
        history.purchase_sessions,
        history.purchases,
        history.total_spend,
        cast(history.total_spend / nullif(history.purchases, 0) as decimal(18, 2)) as avg_purchase_value,
        history.events,
        history.first_seen,
        history.last_seen,
        favourites.favourite_category_1,
        favourites.favourite_category_2,
        favourites.favourite_category_3,
        coalesce(favourites.n_distinct_top_categories, 0) as n_distinct_top_categories
    from history
    -- left: a user whose only categories are missing from the seed keeps the row
    left join favourites on history.user_id = favourites.user_id

)

select * from final
