-- Products most often put in a cart and not bought in the same session.
select
    product_id,
    category_code,
    brand,
    cart_abandoned_sessions,
    cart_sessions,
    purchase_sessions,
    round(cart_to_purchase_rate, 4) as cart_to_purchase_rate
from {{ ref('fct_product_funnel') }}
where cart_abandoned_sessions > 0
order by cart_abandoned_sessions desc, product_id asc
limit 20
