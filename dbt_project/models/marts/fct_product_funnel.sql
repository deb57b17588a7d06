-- Product-level funnel over all loaded events: event counts, and sessions that reached
-- each step for the product (cumulative, as in fct_sessions), with the two step rates
-- and the number of sessions that carted the product but did not buy it.
-- The sum of the product's session days (int_product_funnel_days). Incremental: the
-- products with a day that the upstream run rebuilt (from the window's read_start on)
-- are re-added from all their days.

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

    select distinct product_id from days where session_date >= {{ window.read_start }}

),

product_days as (

    select days.* from days
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
        max_by(category_top, struct(latest_event_time, latest_event_id)) as category_top,
        max_by(category_code, struct(latest_event_time, latest_event_id)) as category_code,
        max_by(brand, struct(latest_event_time, latest_event_id)) as brand,
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

final as (

    select
        product_id,
        category_top,
        category_code,
        brand,
        views,
        carts,
        removes,
        purchases,
        revenue,
        view_sessions,
        cart_sessions,
        purchase_sessions,
        cart_abandoned_sessions,
        cast(cart_sessions / nullif(view_sessions, 0) as double) as view_to_cart_rate,
        cast(purchase_sessions / nullif(cart_sessions, 0) as double) as cart_to_purchase_rate,
        first_seen,
        last_seen
    from products

)

select * from final
