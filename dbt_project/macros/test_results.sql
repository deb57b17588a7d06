{#-
    Keep the outcome of every data and unit test of a dbt invocation in
    `<schema>.dbt_test_results`, one row per test per run: dbt itself keeps them only in
    target/run_results.json, which the Data quality dashboard (dashboards/) cannot read.
    An on-run-end hook; an invocation without tests (`dbt run`) writes nothing.
-#}

{% macro store_test_results(results) %}
    {%- if execute -%}
        {%- set rows = [] -%}
        {%- for r in results if r.node.resource_type in ('test', 'unit_test') -%}
            {%- set message = (r.message or '') | string | replace('\\', '\\\\') | replace("'", "\\'") | replace('\n', ' ') | truncate(500) -%}
            {%- do rows.append(
                "('" ~ invocation_id ~ "', timestamp'" ~ run_started_at.strftime('%Y-%m-%d %H:%M:%S') ~ "', '"
                ~ r.node.name ~ "', '" ~ r.node.resource_type ~ "', '" ~ (r.status | string) ~ "', "
                ~ (r.failures or 0) ~ ", " ~ (r.execution_time or 0) ~ ", '" ~ message ~ "')"
            ) -%}
        {%- endfor -%}
        {%- if rows -%}
            {%- set table = target.schema ~ '.dbt_test_results' -%}
            {%- do run_query(
                'create table if not exists ' ~ table ~ ' (invocation_id string, run_started_at timestamp, test_name string,'
                ~ ' test_type string, status string, failures bigint, execution_seconds double, message string) using delta'
            ) -%}
            {%- do run_query('insert into ' ~ table ~ ' values ' ~ rows | join(', ')) -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
