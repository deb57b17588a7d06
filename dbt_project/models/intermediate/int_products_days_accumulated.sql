-- Product popularity known at the start of each day: for every (product, day) with
-- events, the product's views, carts and purchases on all EARLIER days. Features join
-- it on the day of the prediction point, so they never see that day's later events.

-- A table, not a view: as a view the whole history would be recomputed inside
-- each pass of fct_purchase_intent_features' MERGE over its source.
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

daily as (

    select
        product_id,
        event_date,
        count_if(event_type = 'view') as views,
        count_if(event_type = 'cart') as carts,
        count_if(event_type = 'purchase') as purchases
    from events
    group by product_id, event_date

),

accumulated as (

    select
        product_id,
        event_date,
        coalesce(sum(views) over prior_days, 0) as prior_views,
        coalesce(sum(carts) over prior_days, 0) as prior_carts,
        coalesce(sum(purchases) over prior_days, 0) as prior_purchases
    from daily
    window prior_days as (partition by product_id order by event_date rows between unbounded preceding and 1 preceding)

)

select * from accumulated
