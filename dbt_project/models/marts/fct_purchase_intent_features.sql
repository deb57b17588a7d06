-- Purchase-intent training rows: one per (session, prediction point k), k = 1..K
-- (K = var intent_prediction_points), the point being "just after the session's k-th
-- event". In-session features use events 1..k only; user history uses days before
-- the session's start day; product/category popularity uses days before the day of
-- the k-th event. Label: the session has a purchase strictly after event k.
--
-- Partitioned by event_date: the merge rewrites only files of the days whose sessions
-- changed (rows of a session are dated by their prediction point).

{{
    config(
        tblproperties=delta_stats_on('prediction_time, user_id'),
        unique_key=['session_id', 'prediction_point'],
        partition_by=['event_date'],
        pre_hook="{{ delete_vanished_sessions('event_date') }}",
        meta={'merge_prune_column': 'event_date'},
    )
}}

{%- set window = arrival_window() %}

with

{{ ordered_session_events(window) }},

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
        event_time,
        event_date,
        event_type,
        product_id,
        category_top,
        price,
        sum(cast(event_type = 'view' as int)) over so_far as n_views,
        sum(cast(event_type = 'cart' as int)) over so_far as n_carts,
        sum(cast(event_type = 'remove_from_cart' as int)) over so_far as n_removes,
        sum(cast(event_type = 'purchase' as int)) over so_far as n_purchases,
        sum(cast(event_type = 'purchase' as int)) over whole_session as session_purchases,
        size(collect_set(product_id) over so_far) as n_distinct_products,
        size(collect_set(category_id) over so_far) as n_distinct_categories,
        size(collect_set(case when event_type = 'view' then product_id end) over so_far) as n_distinct_viewed_products,
        lag(event_time) over by_position as previous_event_time,
        avg(price) over so_far as mean_price,
        max(price) over so_far as max_price,
        sum(
            case when event_type = 'cart' then price when event_type = 'remove_from_cart' then -price else 0 end
        ) over so_far as cart_value
    from ordered
    window
        by_position as (partition by session_id order by event_seq),
        so_far as (partition by session_id order by event_seq rows between unbounded preceding and current row),
        whole_session as (partition by session_id)

),

points as (

    select * from running
    where event_seq <= {{ var('intent_prediction_points') }}

),

final as (

    select
        points.session_id,
        points.session_user_id as user_id,
        cast(points.event_seq as int) as prediction_point,
        points.event_time as prediction_time,
        points.event_date,
        cast(points.event_seq as bigint) as f_n_events,
        cast(points.n_views as bigint) as f_n_views,
        cast(points.n_carts as bigint) as f_n_carts,
        cast(points.n_removes as bigint) as f_n_removes,
        cast(points.n_purchases as bigint) as f_n_purchases,
        cast(points.n_distinct_products as bigint) as f_n_distinct_products,
        cast(points.n_distinct_categories as bigint) as f_n_distinct_categories,
        cast(unix_timestamp(points.event_time) - unix_timestamp(points.session_start) as double) as f_seconds_in_session,
        cast(coalesce(unix_timestamp(points.event_time) - unix_timestamp(points.previous_event_time), -1) as double)
            as f_seconds_since_prev_event,
        cast(points.mean_price as double) as f_mean_price,
        cast(points.max_price as double) as f_max_price,
        cast(points.price as double) as f_last_price,
        cast(greatest(points.cart_value, 0) as double) as f_cart_value,
        cast(points.n_carts > 0 as bigint) as f_has_cart,
        cast(points.event_type = 'cart' as bigint) as f_last_is_cart,
        cast(points.n_views - points.n_distinct_viewed_products as bigint) as f_repeat_product_views,
        cast(coalesce(user_days.prior_sessions, 0) as bigint) as f_user_prior_sessions,
        cast(coalesce(user_days.prior_purchases, 0) as bigint) as f_user_prior_purchases,
        cast(coalesce(user_days.prior_spend, 0) as double) as f_user_prior_spend,
        cast(
            coalesce(
                (unix_timestamp(points.session_start) - unix_timestamp(user_days.prior_last_event_time)) / 86400.0,
                -1
            ) as double
        ) as f_user_days_since_last_session,
        cast(coalesce(product_days.prior_views, 0) as bigint) as f_product_prior_views,
        cast(coalesce(product_days.prior_purchases / nullif(product_days.prior_views, 0), 0) as double)
            as f_product_prior_conversion,
        cast(coalesce(category_days.prior_purchases / nullif(category_days.prior_views, 0), 0) as double)
            as f_category_prior_conversion,
        cast(hour(points.event_time) as bigint) as f_hour_of_day,
        cast(dayofweek(points.event_time) as bigint) as f_day_of_week,
        cast(points.session_purchases > points.n_purchases as int) as label_will_purchase
    from points
    left join user_days
        on points.session_user_id = user_days.user_id and points.session_date = user_days.event_date
    left join product_days
        on points.product_id = product_days.product_id and points.event_date = product_days.event_date
    left join category_days
        on points.category_top = category_days.category_top and points.event_date = category_days.event_date

)

select * from final
