{#-
    The CTEs `before_window` and `accumulated` of the int_*_days_accumulated models,
    from a CTE `daily` with one row per (`key`, event_date) and the day's own numbers.

    `accumulated` has, per row, the totals over all EARLIER days (what a feature may
    know at the start of that day) and the day's own numbers:
    * `additive`: (own column, prior column, SQL type) triples, summed over earlier days
      (the type keeps a decimal's precision from growing with every run);
    * `latest`: (own column, prior column) pairs, the maximum over earlier days.

    Incremental runs compute only the days from `window.start` (`daily` must hold only
    those); a key's totals before the window come from its last row before it (that
    row's prior totals plus its own numbers), so no event before the window is read.
    Only the keys of `daily` are looked up there: the rest of the history is scanned
    but not grouped (a run after one new day touches a small share of the keys).
-#}
{% macro days_accumulated(key, additive, latest, window) %}

before_window as (

    {% if is_incremental() %}
    select {{ broadcast_if_small('window_keys', window) }}
        history.{{ key }}
        {%- for own, prior, type in additive %},
        max_by({{ prior }} + {{ own }}, event_date) as {{ own }}
        {%- endfor %}
        {%- for own, prior in latest %},
        max_by(greatest({{ prior }}, {{ own }}), event_date) as {{ own }}
        {%- endfor %}
    from {{ this }} as history
    left semi join (select {{ key }} from daily) as window_keys on history.{{ key }} = window_keys.{{ key }}
    where history.event_date < {{ window.start }}
    group by history.{{ key }}
    {% else %}
    -- a full build starts from nothing
    select
        {{ key }}
        {%- for own, prior, type in additive %},
        {{ own }}
        {%- endfor %}
        {%- for own, prior in latest %},
        {{ own }}
        {%- endfor %}
    from daily
    where false
    {% endif %}

),

accumulated as (

    select
        daily.{{ key }},
        daily.event_date,
        {%- for own, prior, type in additive %}
        cast(coalesce(before_window.{{ own }}, 0) + coalesce(sum(daily.{{ own }}) over prior_days, 0) as {{ type }})
            as {{ prior }},
        {%- endfor %}
        {%- for own, prior in latest %}
        greatest(before_window.{{ own }}, max(daily.{{ own }}) over prior_days) as {{ prior }},
        {%- endfor %}
        {%- for column in additive + latest %}
        daily.{{ column[0] }}{{ ',' if not loop.last }}
        {%- endfor %}
    from daily
    left join before_window on daily.{{ key }} = before_window.{{ key }}
    window prior_days as (
        partition by daily.{{ key }} order by daily.event_date rows between unbounded preceding and 1 preceding
    )

)

{% endmacro %}

{#-
    The one-column key of int_user_products_days_accumulated: '<user_id>-<product_id>'.
    streaming.session_features.user_product_key builds the same string.
-#}
{% macro user_product_key(user_id, product_id) -%}
    concat(cast({{ user_id }} as string), '-', cast({{ product_id }} as string))
{%- endmacro %}
