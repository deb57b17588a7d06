-- Product popularity known at the start of each day: for every (product, day) with
-- events, the product's views, carts and purchases on all EARLIER days, and the day's
-- own numbers. Features join it on the day of the prediction point, so they never see
-- that day's later events.

-- A table, not a view: as a view the whole history would be recomputed inside
-- each pass of fct_purchase_intent_features' MERGE over its source.
-- Incremental: the days from the window start are replaced (REPLACE WHERE) from
-- their events and the products' last rows before the window (macros/accumulate.sql).

{{ config(tblproperties=delta_stats_on('product_id')) }}

{%- set window = arrival_window() %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.start }}
    {% endif %}

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

{{ days_accumulated(
    'product_id',
    [('views', 'prior_views', 'bigint'), ('carts', 'prior_carts', 'bigint'), ('purchases', 'prior_purchases', 'bigint')],
    [],
    window,
) }}

select * from accumulated
