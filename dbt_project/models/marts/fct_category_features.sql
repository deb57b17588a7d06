-- depends_on: {{ ref('top_level_categories') }}
-- Category recommendation training rows: the same (session, prediction point) rows as
-- fct_purchase_intent_features (k = 1..var intent_prediction_points while the session
-- has not purchased among events 1..k: the rule of macros/session_events.sql).
--
-- Target y_<category> (one column per row of the top_level_categories seed): the
-- session goes on to a category it has NOT touched up to the point: it has an event in
-- that category after event k and none among events 1..k ("what else", the slot of a
-- cross-sell widget). Chosen over "has any event in it after the point" (the former
-- target), which mostly repeats the category being viewed, so that "what they viewed
-- last" answered it as well as any model, and over "carts or buys in it after the
-- point", which on the generated data is even more the viewed category (last viewed:
-- Recall@3 0.977). ml/README.md has the targets measured and their figures.
--
-- Features: the session's events per category up to the point; the user's share of
-- events per category on days before the session; what people who view the k-th
-- event's category go on to cart (f_affinity_<category>, from complete earlier days,
-- int_category_affinity_days_accumulated); and the point's price level, time, carts so
-- far, and the user's purchases and sessions, computed here by the same definitions as in
-- fct_purchase_intent_features (macros/point_features.sql), not read from it, so that dbt
-- builds the two marts side by side.
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

{%- set session_totals = {} %}
{%- for category in categories %}
{%- do session_totals.update({'session_' ~ category: "sum(cast(category_top = '" ~ category ~ "' as int))"}) %}
{%- endfor %}

{{ ordered_session_events(window, whole_session=session_totals) }},

user_days as (

    select * from {{ ref('int_users_days_accumulated') }}
    {% if is_incremental() %}
    where event_date >= {{ window.read_start }}  -- joined on a date from the window (partition pruning)
    {% endif %}

),

affinity_days as (

    select * from {{ ref('int_category_affinity_days_accumulated') }}
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
        price,
        category_top,
        sum(cast(event_type = 'cart' as int)) over so_far as n_carts
        {%- for category in categories %},
        sum(cast(category_top = '{{ category }}' as int)) over so_far as so_far_{{ category }},
        session_{{ category }}{% endfor %}
    from ordered
    where {{ within_point_limit() }}  -- the points' events 1..k: no point lies further
    {{ session_windows(so_far=true) }}

),

points as (

    select * from running
    where is_prediction_point

),

{{ sessions_earlier_today(window) }},

final as (

    select
        points.session_id,
        points.session_user_id as user_id,
        cast(points.event_seq as int) as prediction_point,
        points.event_time as prediction_time,
        points.event_date,
        cast(points.event_seq as bigint) as f_n_events,
        cast(coalesce(user_days.prior_events, 0) as bigint) as f_user_prior_events,
        cast(coalesce(user_days.prior_sessions, 0) as bigint) as f_user_prior_sessions,
        cast(coalesce(user_days.prior_purchases, 0) as bigint) as f_user_prior_purchases,
        cast(coalesce(earlier_today.sessions_earlier_today, 0) as bigint) as f_user_sessions_earlier_today,
        cast(points.n_carts as bigint) as f_n_carts,
        cast(points.price as double) as f_last_price,
        {{ price_vs_category('points.price', category_prior_mean_price('category_days')) }} as f_price_vs_category,
        {{ point_time_features('points.event_time') }}
        {%- for category in categories %},
        cast(coalesce(user_days.prior_events_{{ category }} / nullif(user_days.prior_events, 0), 0) as double)
            as f_prior_share_{{ category }}
        {%- endfor %}
        {%- for category in categories %},
        cast(points.so_far_{{ category }} as bigint) as f_so_far_{{ category }}
        {%- endfor %}
        {%- for category in categories %},
        cast(coalesce(affinity_days.prior_carted_{{ category }} / nullif(affinity_days.prior_viewers, 0), 0) as double)
            as f_affinity_{{ category }}
        {%- endfor %}
        {%- for category in categories %},
        -- "what else": a category the session reaches after the point without having touched it up to the point
        cast(points.so_far_{{ category }} = 0 and points.session_{{ category }} > 0 as int) as y_{{ category }}{% endfor %}
    from points
    left join earlier_today on points.session_id = earlier_today.session_id
    left join user_days
        on points.session_user_id = user_days.user_id and points.session_date = user_days.event_date
    left join affinity_days
        on points.category_top = affinity_days.category_top and points.event_date = affinity_days.event_date
    left join category_days
        on points.category_top = category_days.category_top and points.event_date = category_days.event_date

)

select * from final
