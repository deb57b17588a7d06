{#-
    Features of a prediction point that both ML feature marts carry, one definition
    each. Each mart computes them itself rather than one reading the other's rows, so
    that dbt runs the two marts side by side.
-#}

{#-
    CTEs `day_sessions` and `earlier_today`: for every session since the window's read
    start (every session, in a full build), how many sessions of its user started
    earlier on its start day (ties in start time broken by session id); known live,
    where the days-before history is not. A window over the sessions of a user and day
    rather than a join of `points` to them: `points` is a CTE, so reading it twice
    would compute the session windows over every event twice. A mart joins it on its
    points' session ids. Incremental runs recompute every session with an event from
    the window's first day on (macros/session_events.sql), and a session of the same
    user and start day starts on a day from window.read_start on, so this reads no
    further back.
-#}
{% macro sessions_earlier_today(window) %}

day_sessions as (

    select session_id, user_id, session_start, session_date from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
    where session_date >= {{ window.read_start }}
    {% endif %}

),

earlier_today as (

    select
        session_id,
        count(*) over (
            partition by user_id, session_date order by session_start, session_id
            rows between unbounded preceding and 1 preceding
        ) as sessions_earlier_today
    from day_sessions

)

{% endmacro %}

{#- Mean price of the views of a category on days before the point's day (a row of int_categories_days_accumulated), null when none was priced. -#}
{% macro category_prior_mean_price(category_days) -%}
    (cast({{ category_days }}.prior_view_price_sum as double) / nullif({{ category_days }}.prior_priced_views, 0))
{%- endmacro %}

{#-
    f_price_vs_category: the point's price over its category's mean viewed price on earlier
    days; -1 when either is unknown. The arguments are expressions: each is parenthesised,
    so that `price / mean` divides by the whole of `mean`.
-#}
{% macro price_vs_category(price, mean_price) -%}
    cast(case when ({{ price }}) > 0 and ({{ mean_price }}) > 0 then ({{ price }}) / ({{ mean_price }}) else -1 end as double)
{%- endmacro %}

{#- f_hour_of_day and f_day_of_week (1 = Sunday) of the point, in UTC. -#}
{% macro point_time_features(event_time) -%}
    cast(hour({{ event_time }}) as bigint) as f_hour_of_day,
    cast(dayofweek({{ event_time }}) as bigint) as f_day_of_week
{%- endmacro %}
