{#-
    Register the path-addressed bronze Delta tables in the catalog so that dbt
    sources can name them. The ingest writes bronze by path (it must not hold the
    Derby catalog); this on-run-start hook makes `bronze.events` and
    `bronze.quarantine` point at those paths. The column lists are the bronze
    contract of streaming/events.py (a unit test checks they agree); if the ingest
    has not written yet, the tables are created empty with that schema.
-#}

{% macro lakehouse_dir() -%}
    {%- set dir = env_var('LAKEHOUSE_DIR', 'lakehouse-data') -%}
    {%- if not dir.startswith('/') -%}
        {#- relative like lakehouse.config: against the project root, where dbt runs -#}
        {%- set dir = flags.PROJECT_DIR ~ '/' ~ dir if flags.PROJECT_DIR else dir -%}
    {%- endif -%}
    {{- dir.rstrip('/') -}}
{%- endmacro %}

{% macro bronze_events_ddl() -%}
    event_time timestamp, event_type string, product_id bigint, category_id bigint, category_code string, brand string, price double, user_id bigint, user_session string, event_date date, source string, kafka_topic string, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, source_file string, source_line bigint, ingested_at timestamp
{%- endmacro %}

{% macro bronze_quarantine_ddl() -%}
    raw_payload string, payload_bytes int, reason string, reason_detail string, source string, kafka_topic string, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, source_file string, source_line bigint, ingested_at timestamp, ingested_date date
{%- endmacro %}

{% macro register_bronze_tables() %}
    {% if execute %}
        {% do run_query('create schema if not exists bronze') %}
        {% do run_query(
            "create table if not exists bronze.events (" ~ bronze_events_ddl() ~ ") using delta"
            ~ " partitioned by (event_date) location '" ~ lakehouse_dir() ~ "/bronze/events'"
        ) %}
        {% do run_query(
            "create table if not exists bronze.quarantine (" ~ bronze_quarantine_ddl() ~ ") using delta"
            ~ " partitioned by (ingested_date) location '" ~ lakehouse_dir() ~ "/bronze/quarantine'"
        ) %}
    {% endif %}
{% endmacro %}
