{#-
    The top-level categories of the `top_level_categories` seed, in sort order.
    Feature and target columns are generated from it, so adding a category is a
    one-line seed change (plus the contract columns in _ml_features.yml, which a
    unit test keeps in step with the seed).
-#}
{% macro top_level_categories() %}
    {% if execute %}
        {#- several models ask: one query per invocation -#}
        {% set memo = invocation_memo() %}
        {% if 'top_level_categories' not in memo %}
            {% set rows = run_query('select category_top from ' ~ ref('top_level_categories') ~ ' order by sort_order') %}
            {% do memo.update({'top_level_categories': rows.columns[0].values() | list}) %}
        {% endif %}
        {{ return(memo['top_level_categories']) }}
    {% endif %}
    {{ return([]) }}
{% endmacro %}
