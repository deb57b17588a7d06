{#- Custom generic tests: each returns the offending rows. -#}

{#-
    The row rules of a model's columns, checked in one scan: each returned row carries
    `broken_rules`, the rules it breaks. One test per rule and column (dbt's column-level
    tests) scanned the model once each, which made `dbt test` mostly repeated scans.

    not_null              columns never null
    binary                0/1 flags and labels: never null, nothing but 0 or 1
    non_negative          never below 0 (null allowed)
    between_zero_and_one  rates and shares within [0, 1] (null allowed)
    not_greater_than      {column: other}: a funnel step never counts more than the step before it
    accepted_values       {column: [values]}: nothing else (null allowed)

    In the lists of not_null and binary, `prefix*` stands for every column whose name
    starts with the prefix (`*` for every column), so a feature or target added to a mart
    is covered without a line here; a pattern that matches no column of a built model is
    an error.
-#}
{% test column_rules(model, not_null=[], binary=[], non_negative=[], between_zero_and_one=[], not_greater_than={}, accepted_values={}) %}
    {%- set checks = [] -%}
    {%- for column in _rule_columns(model, not_null) -%}
        {%- do checks.append((column ~ ' is null', column ~ ' is null')) -%}
    {%- endfor -%}
    {%- for column in _rule_columns(model, binary) -%}
        {%- do checks.append((column ~ ' is null or ' ~ column ~ ' not in (0, 1)', column ~ ' is not 0 or 1')) -%}
    {%- endfor -%}
    {%- for column in non_negative -%}
        {%- do checks.append((column ~ ' < 0', column ~ ' < 0')) -%}
    {%- endfor -%}
    {%- for column in between_zero_and_one -%}
        {%- do checks.append((column ~ ' < 0 or ' ~ column ~ ' > 1', column ~ ' outside [0, 1]')) -%}
    {%- endfor -%}
    {%- for column, other in not_greater_than.items() -%}
        {%- do checks.append((column ~ ' > ' ~ other, column ~ ' > ' ~ other)) -%}
    {%- endfor -%}
    {%- for column, values in accepted_values.items() -%}
        {%- set listed = [] -%}
        {%- for value in values -%}{%- do listed.append("'" ~ value ~ "'") -%}{%- endfor -%}
        {%- do checks.append((column ~ ' not in (' ~ listed | join(', ') ~ ')', column ~ ' not accepted')) -%}
    {%- endfor -%}
    select *
    from (
        select
            concat_ws(
                '; '
                {%- for condition, rule in checks %},
                case when {{ condition }} then '{{ rule }}' end
                {%- endfor %}
            ) as broken_rules,
            *
        from {{ model }}
    ) as checked
    where broken_rules != ''
{% endtest %}

{#- The columns a rule's list names: names as given, `prefix*` expanded over the model's columns. -#}
{% macro _rule_columns(model, names) %}
    {%- set columns = [] -%}
    {%- set patterns = [] -%}
    {%- for name in names -%}
        {%- do (patterns if name.endswith('*') else columns).append(name) -%}
    {%- endfor -%}
    {%- if patterns and execute -%}
        {%- set present = adapter.get_columns_in_relation(model) | map(attribute='name') | list -%}
        {%- for pattern in patterns -%}
            {%- set matched = [] -%}
            {%- for column in present if column.startswith(pattern[:-1]) -%}
                {%- do matched.append(column) -%}
            {%- endfor -%}
            {%- if present and not matched -%}  {#- no columns at all: the model is not built yet (`dbt docs generate`, `dbt compile`) -#}
                {{ exceptions.raise_compiler_error("column_rules on " ~ model ~ ": no column matches " ~ pattern) }}
            {%- endif -%}
            {%- for column in matched if column not in columns -%}
                {%- do columns.append(column) -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ return(columns) }}
{% endmacro %}

{#- No two rows share the same values in these columns (a composite key). -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
    select {{ combination_of_columns | join(', ') }}, count(*) as n_rows
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
{% endtest %}
