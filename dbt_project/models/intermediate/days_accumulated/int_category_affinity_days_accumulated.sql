-- depends_on: {{ ref('top_level_categories') }}
-- What people who view a category go on to cart, known at the start of each day: for
-- every (top-level category X, day) with events, over all EARLIER days, the number of
-- user-days with a view in X (viewers) and, per top-level category Y, how many of those
-- user-days also hold a cart or purchase in Y (carted_<Y>), and the day's own numbers.
-- The unit is the user's day, not the session: a day is whole before the point's day,
-- so a feature joined on the point's event day never sees an event after the point,
-- and the live scorer reads the same counts from bronze without sessionizing it.
-- A row exists for every category with an event that day, so the point's (category,
-- day) always finds one.

-- A table, not a view: fct_category_features joins it inside its MERGE.
-- Incremental: the days from the window start are replaced (REPLACE WHERE) from
-- their events and the categories' last rows before the window (macros/accumulate.sql).

{{ config(tblproperties=delta_stats_on('category_top')) }}

{% set categories = top_level_categories() %}
{%- set window = arrival_window() %}
{%- set additive = [('viewers', 'prior_viewers', 'bigint')] %}
{%- for category in categories %}
{%- do additive.append(('carted_' ~ category, 'prior_carted_' ~ category, 'bigint')) %}
{%- endfor %}

with

events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.start }}
    {% endif %}

),

user_days as (

    select
        user_id,
        event_date,
        collect_set(category_top) as touched,
        collect_set(case when event_type = 'view' then category_top end) as viewed,
        collect_set(case when event_type in ('cart', 'purchase') then category_top end) as carted
    from events
    group by user_id, event_date

),

daily as (

    select
        category_top,
        event_date,
        count_if(array_contains(viewed, category_top)) as viewers
        {%- for category in categories %},
        count_if(array_contains(viewed, category_top) and array_contains(carted, '{{ category }}')) as carted_{{ category }}{% endfor %}
    from user_days
        lateral view explode(touched) touched_categories as category_top
    group by category_top, event_date

),

{{ days_accumulated('category_top', additive, [], window) }}

select * from accumulated
