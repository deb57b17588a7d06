-- Top-level category popularity known at the start of each day: views and purchases
-- in the category on all EARLIER days, and the views with a price and their price sum
-- (the category's typical price, for f_price_vs_category), and the day's own numbers,
-- for every (category, day) with events.

-- A table, not a view: as a view the whole history would be recomputed inside
-- each pass of fct_purchase_intent_features' MERGE over its source.
-- Incremental: the days from the window start are replaced (REPLACE WHERE) from
-- their events and the categories' last rows before the window (macros/accumulate.sql).

{{ config(tblproperties=delta_stats_on('category_top')) }}

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
        category_top,
        event_date,
        count_if(event_type = 'view') as views,
        count_if(event_type = 'purchase') as purchases,
        count_if(event_type = 'view' and is_valid_price) as priced_views,
        -- decimal: an incremental run adds the totals in another order than a full build
        cast(
            coalesce(sum(case when event_type = 'view' and is_valid_price then cast(price as decimal(12, 2)) end), 0)
            as decimal(22, 2)
        ) as view_price_sum
    from events
    group by category_top, event_date

),

{{ days_accumulated(
    'category_top',
    [
        ('views', 'prior_views', 'bigint'), ('purchases', 'prior_purchases', 'bigint'),
        ('priced_views', 'prior_priced_views', 'bigint'), ('view_price_sum', 'prior_view_price_sum', 'decimal(22, 2)'),
    ],
    [],
    window,
) }}

select * from accumulated
