-- Product-level funnel over all loaded events: event counts, and sessions that reached
-- each step for the product (cumulative, as in fct_sessions), with the two step rates
-- and the number of sessions that carted the product but did not buy it.
-- The sum of the product's session days (int_product_funnel_days). Incremental: the
-- products of the sessions that received events (as dim_users takes their users) are
-- re-added from all their days. Only those can change: a product's numbers are the sum
-- of its (session, product) pairs, and a pair changes only in such a session (a late
-- event that joins two sessions puts both sessions' events into the joined one); its
-- latest category changes only with a new event of it. Not the products with a day
-- that int_product_funnel_days rebuilt: that is every product seen since read_start,
-- most of the table after one day of traffic, and merging them all rewrote it.

{{
    config(
        unique_key='product_id',
        tblproperties=delta_stats_on('product_id'),
    )
}}

{%- set window = arrival_window() %}

with

days as (

    select * from {{ ref('int_product_funnel_days') }}

),

{% if is_incremental() %}
touched_products as (

    {{ arrived_session_keys('product_id', window) }}

),

product_days as (

    select {{ broadcast_if_small('touched_products', window) }} days.* from days
    left semi join touched_products on days.product_id = touched_products.product_id

),
{% else %}
product_days as (

    select * from days

),
{% endif %}

products as (

    select
        product_id,
        cast(sum(views) as bigint) as views,
        cast(sum(carts) as bigint) as carts,
        cast(sum(removes) as bigint) as removes,
        cast(sum(purchases) as bigint) as purchases,
        cast(sum(revenue) as decimal(18, 2)) as revenue,
        cast(sum(view_sessions) as bigint) as view_sessions,
        cast(sum(cart_sessions) as bigint) as cart_sessions,
        cast(sum(purchase_sessions) as bigint) as purchase_sessions,
        cast(sum(cart_abandoned_sessions) as bigint) as cart_abandoned_sessions,
        min(first_seen) as first_seen,
        max(last_seen) as last_seen
    from product_days
    group by product_id

),

latest as (

    -- The category and brand of each product's latest event: its events at last_seen
    -- (ties broken by event_id). The products are broadcast; in a full refresh the join
    -- on the event's date lets Spark prune int_events_sessionized to those events' days.
    select /*+ BROADCAST(last_events) */
        last_events.product_id,
        max_by(events.category_top, events.event_id) as category_top,
        max_by(events.category_code, events.event_id) as category_code,
        max_by(events.brand, events.event_id) as brand
    from (select product_id, last_seen from products) as last_events
    inner join {{ ref('int_events_sessionized') }} as events
        on last_events.product_id = events.product_id
        and cast(last_events.last_seen as date) = events.event_date
        and last_events.last_seen = events.event_time
    {% if is_incremental() %}
    -- A touched product has an event in a session that received events, all of which are
    -- dated from read_start on, so its latest event is too. Said outright: with the
    -- products coming from a subquery over the events, Spark did not prune the days by
    -- the join, and read every event.
    where events.event_date >= {{ window.read_start }}
    {% endif %}
    group by last_events.product_id

),

final as (

    select
        products.product_id,
        latest.category_top,
        latest.category_code,
        latest.brand,
        products.views,
        products.carts,
        products.removes,
        products.purchases,
        products.revenue,
        products.view_sessions,
        products.cart_sessions,
        products.purchase_sessions,
        products.cart_abandoned_sessions,
        cast(products.cart_sessions / nullif(products.view_sessions, 0) as double) as view_to_cart_rate,
        cast(products.purchase_sessions / nullif(products.cart_sessions, 0) as double) as cart_to_purchase_rate,
        products.first_seen,
        products.last_seen
    from products
    inner join latest on products.product_id = latest.product_id

)

select * from final
