-- Purchases and revenue add up to the staged totals in every mart that reports them:
-- sessions, daily funnel, category and brand funnels (each purchase event has exactly
-- one category and one brand), product funnel and users. Returns the marts that differ.

with

staged as (

    select
        count_if(event_type = 'purchase') as purchases,
        cast(coalesce(sum(case when event_type = 'purchase' then cast(price as decimal(12, 2)) end), 0) as decimal(18, 2))
            as revenue
    from {{ ref('stg_bronze__events') }}

),

marts as (

    select 'fct_sessions' as mart, sum(n_purchases) as purchases, sum(revenue) as revenue
    from {{ ref('fct_sessions') }}
    union all
    select 'fct_funnel_daily' as mart, sum(purchases) as purchases, sum(revenue) as revenue
    from {{ ref('fct_funnel_daily') }}
    union all
    select 'fct_funnel_category_daily' as mart, sum(purchases) as purchases, sum(revenue) as revenue
    from {{ ref('fct_funnel_category_daily') }}
    union all
    select 'fct_funnel_brand_daily' as mart, sum(purchases) as purchases, sum(revenue) as revenue
    from {{ ref('fct_funnel_brand_daily') }}
    union all
    select 'fct_product_funnel' as mart, sum(purchases) as purchases, sum(revenue) as revenue
    from {{ ref('fct_product_funnel') }}
    union all
    select 'dim_users' as mart, sum(purchases) as purchases, sum(total_spend) as revenue
    from {{ ref('dim_users') }}

)

select
    marts.mart,
    marts.purchases,
    staged.purchases as staged_purchases,
    marts.revenue,
    staged.revenue as staged_revenue
from marts
cross join staged
where coalesce(marts.purchases, 0) != staged.purchases or coalesce(marts.revenue, 0) != staged.revenue
