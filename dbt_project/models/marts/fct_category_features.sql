-- depends_on: {{ ref('top_level_categories') }}
-- Category-interest training rows: the same (session, prediction point) rows as
-- fct_purchase_intent_features (k = 1..var intent_prediction_points while the session
-- has not purchased among events 1..k: the rule of macros/session_events.sql).
-- Features: the user's share of events per top-level category on days before the
-- session, and the session's events per category up to the point. Targets
-- y_<category>: the session has an event in that category strictly after the point
-- (multi-label; one column per row of the top_level_categories seed).
--
-- Partitioned by event_date: the merge rewrites only files of the days whose sessions
-- changed (rows of a session are dated by their prediction point).

{{
    config(
        tblproperties=delta_stats_on('prediction_time, user_id'),
        unique_key=['session_id', 'prediction_point'],
        partition_by=['event_date'],
        pre_hook=[
            "{{ delete_vanished_sessions('event_date') }}",
            "{{ delete_points_ended_by_a_late_purchase() }}",
        ],
        meta={'merge_prune_column': 'event_date'},
    )
}}

{%- set window = arrival_window() %}

{% set categories = top_level_categories() %}

with

{{ ordered_session_events(window) }},

user_days as (

    select * from {{ ref('int_users_days_accumulated') }}
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
        event_date
        {%- for category in categories %},
        sum(cast(category_top = '{{ category }}' as int)) over so_far as so_far_{{ category }},
        sum(cast(category_top = '{{ category }}' as int)) over whole_session as session_{{ category }}
        {%- endfor %}
    from ordered
    window
        so_far as (partition by session_id order by event_seq rows between unbounded preceding and current row),
        whole_session as (partition by session_id)

),

points as (

    select * from running
    where is_prediction_point

),

final as (

    select
        points.session_id,
        points.session_user_id as user_id,
        cast(points.event_seq as int) as prediction_point,
        points.event_time as prediction_time,
        points.event_date,
        cast(points.event_seq as bigint) as f_n_events,
        cast(coalesce(user_days.prior_events, 0) as bigint) as f_user_prior_events
        {%- for category in categories %},
        cast(coalesce(user_days.prior_events_{{ category }} / nullif(user_days.prior_events, 0), 0) as double)
            as f_prior_share_{{ category }}
        {%- endfor %}
        {%- for category in categories %},
        cast(points.so_far_{{ category }} as bigint) as f_so_far_{{ category }}
        {%- endfor %}
        {%- for category in categories %},
        cast(points.session_{{ category }} > points.so_far_{{ category }} as int) as y_{{ category }}
        {%- endfor %}
    from points
    left join user_days
        on points.session_user_id = user_days.user_id and points.session_date = user_days.event_date

)

select * from final
