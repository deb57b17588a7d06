{#- Custom generic tests: each returns the offending rows. -#}

{% test non_negative(model, column_name) %}
    select * from {{ model }} where {{ column_name }} < 0
{% endtest %}

{% test between_zero_and_one(model, column_name) %}
    select * from {{ model }} where {{ column_name }} < 0 or {{ column_name }} > 1
{% endtest %}

{#- A funnel step can never count more than the step before it. -#}
{% test not_greater_than(model, column_name, other_column) %}
    select * from {{ model }} where {{ column_name }} > {{ other_column }}
{% endtest %}

{#- A 0/1 label or flag. -#}
{% test is_binary(model, column_name) %}
    select * from {{ model }} where {{ column_name }} not in (0, 1) or {{ column_name }} is null
{% endtest %}

{#- No two rows share the same values in these columns (a composite key). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}

{#- No null in any column whose name starts with one of the prefixes (ML feature marts:
    every f_* feature, target and key is filled, as the ML contract promises). -#}
{% test no_nulls_in_columns(model, prefixes) %}
    {%- set columns = [] -%}
    {%- for column in adapter.get_columns_in_relation(model) -%}
        {%- for prefix in prefixes if column.name.startswith(prefix) and column.name not in columns -%}
            {%- do columns.append(column.name) -%}
        {%- endfor -%}
    {%- endfor -%}
    select * from {{ model }}
    where {% for column in columns %}{{ column }} is null{% if not loop.last %} or {% endif %}{% endfor %}
    {%- if not columns %} 1 = 0 {%- endif %}
{% endtest %}
