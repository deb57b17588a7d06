-- A user's views of one product known at the start of each day: for every (user,
-- product, day) with an event of that user on that product, the user's views of it on
-- all EARLIER days, and the day's own views. fct_purchase_intent_features joins it on
-- the day of the prediction point's event (whose product it is, so the row exists), as
-- the product popularity features: "earlier" never includes that day.
-- Keyed by one column, user_product = '<user_id>-<product_id>', so that the shared
-- accumulation (macros/accumulate.sql) serves it as it serves the one-key models; the
-- live scorer (streaming.session_features) builds the same key.

-- A table, not a view: as a view the whole history would be recomputed inside
-- each pass of fct_purchase_intent_features' MERGE over its source.
-- Incremental: the days from the window start are replaced (REPLACE WHERE) from
-- their events and the pairs' last rows before the window (macros/accumulate.sql).

{{ config(tblproperties=delta_stats_on('user_product')) }}

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
        {{ user_product_key('user_id', 'product_id') }} as user_product,
        event_date,
        count_if(event_type = 'view') as views
    from events
    group by {{ user_product_key('user_id', 'product_id') }}, event_date

),

{{ days_accumulated('user_product', [('views', 'prior_views', 'bigint')], [], window) }}

select * from accumulated
