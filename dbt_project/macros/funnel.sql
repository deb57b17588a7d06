{#-
    Funnel rates shared by the daily, category and brand funnels, so that every
    funnel mart states the same rule: step counts are sessions that REACHED a step
    (cumulative: purchase implies cart implies view), a rate is a step over the step
    before it (null when that step is empty), drop-off is one minus the rate.
-#}

{% macro funnel_rates() -%}
        cast(cart_sessions / nullif(view_sessions, 0) as double) as view_to_cart_rate,
        cast(purchase_sessions / nullif(cart_sessions, 0) as double) as cart_to_purchase_rate,
        cast(purchase_sessions / nullif(view_sessions, 0) as double) as view_to_purchase_rate,
        cast(1 - cart_sessions / nullif(view_sessions, 0) as double) as view_to_cart_dropoff,
        cast(1 - purchase_sessions / nullif(cart_sessions, 0) as double) as cart_to_purchase_dropoff
{%- endmacro %}

{#-
    CTEs `events` and `sessions`: the events and the sessions (fct_sessions) that a funnel
    dated by session start recomputes. Incremental runs take those from the window's
    `read_start` on: a session that received events started then or later, and every
    event of a session that started then is dated then or later.
-#}
{% macro events_and_sessions_from_read_start(window) %}
events as (

    select * from {{ ref('int_events_sessionized') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}
    {% endif %}

),

sessions as (

    select * from {{ ref('fct_sessions') }}
    {% if is_incremental() %}
    where session_date >= {{ window.read_start }}
    {% endif %}

),
{% endmacro %}

{#-
    Per (session, key) flags of the funnel steps reached (cumulative, see above), over
    `events` grouped by session and key; has_cart_event tells abandonment apart.
-#}
{% macro reached_step_flags() -%}
        max(cast(events.event_type in ('view', 'cart', 'purchase') as int)) as reached_view,
        max(cast(events.event_type in ('cart', 'purchase') as int)) as reached_cart,
        max(cast(events.event_type = 'purchase' as int)) as reached_purchase,
        max(cast(events.event_type = 'cart' as int)) as has_cart_event
{%- endmacro %}

{#-
    Per (session, dimension value) funnel, e.g. by top-level category or brand: the
    session reached `view` in a category if it has any view/cart/purchase event there,
    `cart` if a cart or purchase event there, `purchase` if a purchase event there.
    Dated by the session's start (from fct_sessions), like the daily funnel.
-#}
{% macro dimension_funnel(dimension_expr, dimension_name, window) %}

with

{{ events_and_sessions_from_read_start(window) }}

session_dimension as (

    select
        events.session_id,
        {{ dimension_expr }} as {{ dimension_name }},
        {{ reached_step_flags() }},
        count_if(events.event_type = 'purchase') as purchases,
        coalesce(sum(case when events.event_type = 'purchase' then cast(events.price as decimal(12, 2)) end), 0) as revenue
    from events
    group by events.session_id, {{ dimension_expr }}

),

dated as (

    select
        sessions.session_date,
        session_dimension.*
    from session_dimension
    inner join sessions on session_dimension.session_id = sessions.session_id

),

counted as (

    select
        session_date,
        {{ dimension_name }},
        count(*) as sessions,
        sum(reached_view) as view_sessions,
        sum(reached_cart) as cart_sessions,
        sum(reached_purchase) as purchase_sessions,
        sum(case when reached_purchase = 1 and has_cart_event = 0 then 1 else 0 end) as purchase_sessions_without_cart,
        sum(case when has_cart_event = 1 and reached_purchase = 0 then 1 else 0 end) as cart_abandoned_sessions,
        sum(purchases) as purchases,
        cast(sum(revenue) as decimal(18, 2)) as revenue
    from dated
    group by session_date, {{ dimension_name }}

),

final as (

    select
        session_date,
        {{ dimension_name }},
        sessions,
        view_sessions,
        cart_sessions,
        purchase_sessions,
        purchase_sessions_without_cart,
        cart_abandoned_sessions,
        purchases,
        revenue,
        {{ funnel_rates() }}
    from counted

)

select * from final

{% endmacro %}
