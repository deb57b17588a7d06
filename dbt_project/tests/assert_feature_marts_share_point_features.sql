-- The two ML feature marts hold the same prediction points, and the columns they share
-- (macros/point_features.sql and the user's history) agree row for row: each mart
-- computes them itself so that the two build side by side, and this is what keeps them
-- one definition. Returns every point missing from one mart or differing in a column.

{%- set shared = [
    'user_id', 'prediction_time', 'event_date', 'f_n_events', 'f_user_prior_sessions', 'f_user_prior_purchases',
    'f_user_sessions_earlier_today', 'f_n_carts', 'f_last_price', 'f_price_vs_category', 'f_hour_of_day',
    'f_day_of_week',
] %}

select
    coalesce(intent.session_id, category.session_id) as session_id,
    coalesce(intent.prediction_point, category.prediction_point) as prediction_point,
    intent.session_id is null as missing_in_intent,
    category.session_id is null as missing_in_category
from {{ ref('fct_purchase_intent_features') }} as intent
full outer join {{ ref('fct_category_features') }} as category
    on intent.session_id = category.session_id and intent.prediction_point = category.prediction_point
where
    intent.session_id is null
    or category.session_id is null
    {%- for column in shared %}
    or not (intent.{{ column }} <=> category.{{ column }})
    {%- endfor %}
