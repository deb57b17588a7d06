-- Top-level category popularity known at the start of each day: views and purchases
-- in the category on all EARLIER days, for every (category, day) with events.

-- A table, not a view: as a view the whole history would be recomputed inside
-- each pass of fct_purchase_intent_features' MERGE over its source.
{{ config(materialized='table') }}

with

events as (

    select * from {{ ref('int_events_sessionized') }}

),

daily as (

    select
        category_top,
        event_date,
        count_if(event_type = 'view') as views,
        count_if(event_type = 'purchase') as purchases
    from events
    group by category_top, event_date

),

accumulated as (

    select
        category_top,
        event_date,
        coalesce(sum(views) over prior_days, 0) as prior_views,
        coalesce(sum(purchases) over prior_days, 0) as prior_purchases
    from daily
    window prior_days as (partition by category_top order by event_date rows between unbounded preceding and 1 preceding)

)

select * from accumulated
