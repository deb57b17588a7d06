-- Product-level funnel over all loaded events: event counts, and sessions that reached
-- each step for the product (cumulative, as in fct_sessions), with the two step rates
-- and the number of sessions that carted the product but did not buy it.
-- Incremental: the products of every session that received events since the last run
-- are recomputed from all their events (a late event can move a product's events from
-- one inactivity session to another, so not only the arrived events' products change).

{{
    config(
        unique_key='product_id',
    )
}}

{%- set window = arrival_window() %}

with

{% if is_incremental() %}
touched_products as (

    {{ arrived_session_keys('product_id', window) }}

),

events as (

    select all_events.* from {{ ref('int_events_sessionized') }} as all_events
    left semi join touched_products on all_events.product_id = touched_products.product_id

),
{% else %}
events as (

    select * from {{ ref('int_events_sessionized') }}

),
{% endif %}

session_product as (

    select
        session_id,
        product_id,
        max(cast(event_type in ('view', 'cart', 'purchase') as int)) as reached_view,
        max(cast(event_type in ('cart', 'purchase') as int)) as reached_cart,
        max(cast(event_type = 'purchase' as int)) as reached_purchase,
        max(cast(event_type = 'cart' as int)) as has_cart_event
    from events
    group by session_id, product_id

),

session_steps as (

    select
        product_id,
        sum(reached_view) as view_sessions,
        sum(reached_cart) as cart_sessions,
        sum(reached_purchase) as purchase_sessions,
        sum(case when has_cart_event = 1 and reached_purchase = 0 then 1 else 0 end) as cart_abandoned_sessions
    from session_product
    group by product_id

),

product_events as (

    select
        product_id,
        max_by(category_top, struct(event_time, event_id)) as category_top,
        max_by(category_code, struct(event_time, event_id)) as category_code,
        max_by(brand, struct(event_time, event_id)) as brand,
        count_if(event_type = 'view') as views,
        count_if(event_type = 'cart') as carts,
        count_if(event_type = 'remove_from_cart') as removes,
        count_if(event_type = 'purchase') as purchases,
        cast(coalesce(sum(case when event_type = 'purchase' then cast(price as decimal(12, 2)) end), 0) as decimal(18, 2))
            as revenue,
        min(event_time) as first_seen,
        max(event_time) as last_seen
    from events
    group by product_id

),

final as (

    select
        product_events.product_id,
        product_events.category_top,
        product_events.category_code,
        product_events.brand,
        product_events.views,
        product_events.carts,
        product_events.removes,
        product_events.purchases,
        product_events.revenue,
        session_steps.view_sessions,
        session_steps.cart_sessions,
        session_steps.purchase_sessions,
        session_steps.cart_abandoned_sessions,
        cast(session_steps.cart_sessions / nullif(session_steps.view_sessions, 0) as double) as view_to_cart_rate,
        cast(session_steps.purchase_sessions / nullif(session_steps.cart_sessions, 0) as double) as cart_to_purchase_rate,
        product_events.first_seen,
        product_events.last_seen
    from product_events
    inner join session_steps on product_events.product_id = session_steps.product_id

)

select * from final
