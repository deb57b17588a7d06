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
