-- The product funnel of each session start day: per (product, session_date), the
-- product's events in the sessions that started that day, and how many of those
-- sessions reached each step for it. fct_product_funnel adds up a product's days.
--
-- Why a table of days: a product's funnel counts sessions over all of its history, so
-- an incremental run that recomputed it from events would read every event of every
-- touched product (most of int_events_sessionized after a day of traffic). These rows
-- are additive, since a (session, product) pair belongs to exactly one session start
-- day, so a run rebuilds only the days whose sessions can have changed, and the mart
-- reads one narrow row per product and day.
--
-- Dated by the session's start (fct_sessions.session_date), not by each event's date,
-- so that a session's steps for a product are counted once. Incremental: the days from
-- the window's `read_start` are replaced (REPLACE WHERE, macros/incremental_writes.sql):
-- a session that received events started then or later, and every event of a session
-- starting then is dated then or later.

{{
    config(
        materialized='incremental',
        incremental_strategy='insert_overwrite',
        partition_by=['session_date'],
        on_schema_change='fail',
        tblproperties=delta_stats_on('product_id'),
        meta={'rebuilds_from': 'read_start'},
        post_hook=["{{ record_arrivals() }}"],
    )
}}

{%- set window = arrival_window() %}

with

{{ events_and_sessions_from_read_start(window) }}

session_product as (

    -- one row per (session, product). Only fixed-width aggregates, so that Spark hashes
    -- them: a max_by over strings here made it sort every event (about 24 s of 50 at 10 M
    -- events), which is why fct_product_funnel looks up the latest event's category itself.
    -- Revenue is summed in cents, exact like a decimal sum, for the same reason.
    select /*+ SHUFFLE_HASH(sessions) */
        events.session_id,
        events.product_id,
        sessions.session_date,
        {{ reached_step_flags() }},
        count_if(events.event_type = 'view') as views,
        count_if(events.event_type = 'cart') as carts,
        count_if(events.event_type = 'remove_from_cart') as removes,
        count_if(events.event_type = 'purchase') as purchases,
        sum(case when events.event_type = 'purchase' then cast(cast(events.price as decimal(12, 2)) * 100 as bigint) end)
            as revenue_cents,
        min(events.event_time) as first_seen,
        max(events.event_time) as last_seen
    from events
    inner join sessions on events.session_id = sessions.session_id
    group by events.session_id, events.product_id, sessions.session_date

),

final as (

    select
        product_id,
        session_date,
        cast(sum(views) as bigint) as views,
        cast(sum(carts) as bigint) as carts,
        cast(sum(removes) as bigint) as removes,
        cast(sum(purchases) as bigint) as purchases,
        cast(coalesce(sum(revenue_cents), 0) / 100 as decimal(18, 2)) as revenue,
        cast(sum(reached_view) as bigint) as view_sessions,
        cast(sum(reached_cart) as bigint) as cart_sessions,
        cast(sum(reached_purchase) as bigint) as purchase_sessions,
        cast(sum(case when has_cart_event = 1 and reached_purchase = 0 then 1 else 0 end) as bigint)
            as cart_abandoned_sessions,
        min(first_seen) as first_seen,
        max(last_seen) as last_seen
    from session_product
    group by product_id, session_date

)

select * from final
