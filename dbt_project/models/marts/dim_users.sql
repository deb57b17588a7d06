-- One row per user: session and purchase history, spend, first/last seen and the
-- three top-level categories the user interacted with most (by events; ties broken
-- by category name). Incremental: the users with an event in a session that received
-- events since the last run are rebuilt from all their sessions and events.

{{
    config(
        tblproperties=delta_stats_on('user_id'),
        unique_key='user_id',
    )
}}

{%- set window = arrival_window() %}

with

sessions as (

    select * from {{ ref('fct_sessions') }}

),

events as (

    select * from {{ ref('int_events_sessionized') }}

),

{% if is_incremental() %}
touched_users as (

    {{ arrived_session_keys('user_id', window) }}

),

user_sessions as (

    select sessions.* from sessions
    inner join touched_users on sessions.user_id = touched_users.user_id

),

user_events as (

    select events.* from events
    inner join touched_users on events.user_id = touched_users.user_id

),
{% else %}
user_sessions as (

    select * from sessions

),

user_events as (

    select * from events

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

category_counts as (

    select
        user_id,
        category_top,
        count(*) as n_events,
        row_number() over (partition by user_id order by count(*) desc, category_top) as category_rank
    from user_events
    group by user_id, category_top

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
        favourites.n_distinct_top_categories
    from history
    inner join favourites on history.user_id = favourites.user_id

)

select * from final
