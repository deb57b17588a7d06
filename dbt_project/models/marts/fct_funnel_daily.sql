-- Daily session funnel view -> cart -> purchase, by the date the session started.
-- Steps are cumulative (see fct_sessions): a buy-now purchase without a cart event
-- counts in cart_sessions and is also counted in purchase_sessions_without_cart.
-- Incremental: every session dated from the window's `read_start` on is recomputed (a
-- session that received events started then or later), so those dates are replaced in one
-- Delta commit (REPLACE WHERE, macros/incremental_writes.sql). Unlike a MERGE, that also
-- drops a row whose sessions all moved away (two sessions joined by a late event).

{{
    config(
        incremental_strategy='insert_overwrite',
        partition_by=['session_date'],
        meta={'rebuilds_from': 'read_start'},
    )
}}

{%- set window = arrival_window() %}

with

sessions as (

    select * from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
    -- whole days, reaching back far enough for sessions re-aggregated in fct_sessions
    where session_date >= {{ window.read_start }}
    {% endif %}

),

counted as (

    select
        session_date,
        count(*) as sessions,
        sum(reached_view) as view_sessions,
        sum(reached_cart) as cart_sessions,
        sum(reached_purchase) as purchase_sessions,
        sum(is_purchase_without_cart) as purchase_sessions_without_cart,
        sum(is_cart_abandoned) as cart_abandoned_sessions,
        sum(n_purchases) as purchases,
        cast(sum(revenue) as decimal(18, 2)) as revenue,
        sum(is_bounce) as bounce_sessions,
        cast(avg(seconds_to_first_purchase) as double) as avg_seconds_to_purchase,
        cast(percentile(seconds_to_first_purchase, 0.5) as double) as median_seconds_to_purchase
    from sessions
    group by session_date

),

final as (

    select
        session_date,
        sessions,
        view_sessions,
        cart_sessions,
        purchase_sessions,
        purchase_sessions_without_cart,
        cart_abandoned_sessions,
        purchases,
        revenue,
        bounce_sessions,
        {{ funnel_rates() }},
        cast(cart_abandoned_sessions / nullif(cart_abandoned_sessions + purchase_sessions - purchase_sessions_without_cart, 0) as double)
            as cart_abandonment_rate,
        cast(bounce_sessions / sessions as double) as bounce_rate,
        avg_seconds_to_purchase,
        median_seconds_to_purchase
    from counted

)

select * from final
