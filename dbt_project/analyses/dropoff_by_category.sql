-- Drop-off by top-level category over the whole period: where do sessions leave?
select
    category_top,
    sum(view_sessions) as view_sessions,
    sum(cart_sessions) as cart_sessions,
    sum(purchase_sessions) as purchase_sessions,
    round(1 - sum(cart_sessions) / nullif(sum(view_sessions), 0), 4) as view_to_cart_dropoff,
    round(1 - sum(purchase_sessions) / nullif(sum(cart_sessions), 0), 4) as cart_to_purchase_dropoff
from {{ ref('fct_funnel_category_daily') }}
group by category_top
order by view_sessions desc
