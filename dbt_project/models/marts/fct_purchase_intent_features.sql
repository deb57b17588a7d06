-- depends_on: {{ ref('top_level_categories') }}
-- Purchase-intent training rows: one per (session, prediction point k), the point being
-- "just after the session's k-th event", for k = 1..K (K = var intent_prediction_points)
-- while the session has not purchased among events 1..k (the rule of
-- macros/session_events.sql: a point at or after the first purchase does not exist).
-- In-session features use events 1..k only; user history uses days before the session's
-- start day, except the count of the user's sessions started earlier the same day;
-- product/category popularity and prices, and the user's views of the k-th event's
-- product, use days before the day of the k-th event. Label: the session purchases later (after event k; as no point has a purchase
-- yet, that is: the session has a purchase).
--
-- Partitioned by event_date (rows of a session are dated by their prediction point): an
-- incremental run replaces the days from its window's start and merges the few earlier
-- rows of sessions that cross into it (replace_days_then_merge, macros/incremental_writes.sql).

{{
    config(
        tblproperties=with_deletion_vectors(delta_stats_on('prediction_time, user_id')),
        unique_key=['session_id', 'prediction_point'],
        partition_by=['event_date'],
        post_hook="{{ release_cached_rows() }}",
        meta={'merge_prune_column': 'event_date', 'replaces_days_from_start': true},
    )
}}

{%- set window = arrival_window() %}

{% set categories = top_level_categories() %}

with

{{ ordered_session_events(window, whole_session={'session_purchases': "sum(cast(event_type = 'purchase' as int))"}) }},

user_days as (

    select * from {{ ref('int_users_days_accumulated') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}  -- joined on a date from the window (partition pruning)
    {% endif %}

),

product_days as (

    select * from {{ ref('int_products_days_accumulated') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}  -- joined on a date from the window (partition pruning)
    {% endif %}

),

user_product_days as (

    select * from {{ ref('int_user_products_days_accumulated') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}  -- joined on a date from the window (partition pruning)
    {% endif %}

),

category_days as (

    select * from {{ ref('int_categories_days_accumulated') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}  -- joined on a date from the window (partition pruning)
    {% endif %}

),

running as (

    select
        session_id,
        session_user_id,
        session_start,
        session_date,
        event_seq,
        is_prediction_point,
        event_time,
        event_date,
        event_type,
        product_id,
        category_top,
        price,
        session_purchases,
        sum(cast(event_type = 'view' as int)) over so_far as n_views,
        sum(cast(event_type = 'cart' as int)) over so_far as n_carts,
        sum(cast(event_type = 'remove_from_cart' as int)) over so_far as n_removes,
        size(collect_set(product_id) over so_far) as n_distinct_products,
        size(collect_set(category_id) over so_far) as n_distinct_categories,
        size(collect_set(case when event_type = 'view' then product_id end) over so_far) as n_distinct_viewed_products,
        lag(event_time) over in_order as previous_event_time,
        avg(price) over so_far as mean_price,
        max(price) over so_far as max_price,
        sum(
            case when event_type = 'cart' then price when event_type = 'remove_from_cart' then -price else 0 end
        ) over so_far as cart_value
    from ordered
    where {{ within_point_limit() }}  -- the points' events 1..k: no point lies further
    {{ session_windows(so_far=true) }}

),

points as (

    select * from running
    where is_prediction_point

),

{{ sessions_earlier_today(window) }},

with_history as (

    select
        points.*,
        user_days.prior_sessions as user_prior_sessions,
        user_days.prior_events as user_prior_events,
        user_days.prior_purchases as user_prior_purchases,
        user_days.prior_spend as user_prior_spend,
        user_days.prior_last_event_time as user_prior_last_event_time,
        -- the user's events on earlier days in the k-th event's top-level category
        -- (0 for a category the seed does not list: there is no column for it)
        case points.category_top
            {%- for category in categories %}
            when '{{ category }}' then user_days.prior_events_{{ category }}
            {%- endfor %}
            else 0
        end as user_prior_category_events,
        user_product_days.prior_views as user_prior_product_views,
        earlier_today.sessions_earlier_today,
        product_days.prior_views as product_prior_views,
        product_days.prior_carts as product_prior_carts,
        product_days.prior_purchases as product_prior_purchases,
        category_days.prior_views as category_prior_views,
        category_days.prior_purchases as category_prior_purchases,
        {{ category_prior_mean_price('category_days') }} as category_prior_mean_price
    from points
    left join user_days
        on points.session_user_id = user_days.user_id and points.session_date = user_days.event_date
    left join user_product_days
        on {{ user_product_key('points.session_user_id', 'points.product_id') }} = user_product_days.user_product
        and points.event_date = user_product_days.event_date
    left join earlier_today on points.session_id = earlier_today.session_id
    left join product_days
        on points.product_id = product_days.product_id and points.event_date = product_days.event_date
    left join category_days
        on points.category_top = category_days.category_top and points.event_date = category_days.event_date

),

final as (

    select
        session_id,
        session_user_id as user_id,
        cast(event_seq as int) as prediction_point,
        event_time as prediction_time,
        event_date,
        cast(event_seq as bigint) as f_n_events,
        cast(n_views as bigint) as f_n_views,
        cast(n_carts as bigint) as f_n_carts,
        cast(n_removes as bigint) as f_n_removes,
        cast(n_distinct_products as bigint) as f_n_distinct_products,
        cast(n_distinct_categories as bigint) as f_n_distinct_categories,
        cast(unix_timestamp(event_time) - unix_timestamp(session_start) as double) as f_seconds_in_session,
        cast(coalesce(unix_timestamp(event_time) - unix_timestamp(previous_event_time), -1) as double)
            as f_seconds_since_prev_event,
        cast(mean_price as double) as f_mean_price,
        cast(max_price as double) as f_max_price,
        cast(price as double) as f_last_price,
        {{ price_vs_category('price', 'category_prior_mean_price') }} as f_price_vs_category,
        cast(greatest(cart_value, 0) as double) as f_cart_value,
        cast(n_carts > 0 as bigint) as f_has_cart,
        cast(event_type = 'cart' as bigint) as f_last_is_cart,
        cast(n_views - n_distinct_viewed_products as bigint) as f_repeat_product_views,
        cast(coalesce(user_prior_sessions, 0) as bigint) as f_user_prior_sessions,
        cast(coalesce(user_prior_purchases, 0) as bigint) as f_user_prior_purchases,
        cast(coalesce(user_prior_spend, 0) as double) as f_user_prior_spend,
        cast(
            coalesce((unix_timestamp(session_start) - unix_timestamp(user_prior_last_event_time)) / 86400.0, -1)
            as double
        ) as f_user_days_since_last_session,
        cast(coalesce(user_prior_category_events, 0) as bigint) as f_user_prior_category_events,
        cast(coalesce(user_prior_category_events / nullif(user_prior_events, 0), 0) as double) as f_user_prior_category_share,
        cast(coalesce(user_prior_product_views, 0) as bigint) as f_user_prior_product_views,
        cast(coalesce(sessions_earlier_today, 0) as bigint) as f_user_sessions_earlier_today,
        cast(coalesce(product_prior_views, 0) as bigint) as f_product_prior_views,
        cast(coalesce(product_prior_purchases / nullif(product_prior_views, 0), 0) as double) as f_product_prior_conversion,
        cast(coalesce(product_prior_carts / nullif(product_prior_views, 0), 0) as double) as f_product_prior_cart_rate,
        cast(coalesce(category_prior_purchases / nullif(category_prior_views, 0), 0) as double) as f_category_prior_conversion,
        {{ point_time_features('event_time') }},
        cast(session_purchases > 0 as int) as label_will_purchase
    from with_history

)

select * from final
