-- Conversion by day: sessions, each funnel step and the step rates.
-- dbt show -s conversion_by_day   |   python -m lakehouse.sql -f dbt_project/analyses/conversion_by_day.sql
select
    session_date,
    sessions,
    view_sessions,
    cart_sessions,
    purchase_sessions,
    round(view_to_cart_rate, 4) as view_to_cart,
    round(cart_to_purchase_rate, 4) as cart_to_purchase,
    round(view_to_purchase_rate, 4) as conversion,
    revenue
from {{ ref('fct_funnel_daily') }}
order by session_date
