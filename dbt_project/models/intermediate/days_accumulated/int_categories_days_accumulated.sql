-- Top-level category popularity known at the start of each day: views and purchases
-- in the category on all EARLIER days, and the day's own numbers, for every
-- (category, day) with events.

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
        count_if(event_type = 'purchase') as purchases
    from events
    group by category_top, event_date

),

{{ days_accumulated(
    'category_top',
    [('views', 'prior_views', 'bigint'), ('purchases', 'prior_purchases', 'bigint')],
    [],
    window,
) }}

select * from accumulated
