{#-
    Register the path-addressed bronze Delta tables in the catalog so that dbt
    sources can name them. The ingest writes bronze by path (it must not hold the
    Derby catalog); this on-run-start hook makes `bronze.events` and
    `bronze.quarantine` point at those paths. The column lists are the bronze
    contract of streaming/events.py (a unit test checks they agree); if the ingest
    has not written yet, the tables are created empty with that schema.
-#}

{% macro lakehouse_dir() -%}
    {#-
        An absolute path: Spark resolves a relative LOCATION against the schema's
        warehouse folder, not against the folder dbt runs in, so `lakehouse-data`
        would point bronze.events at lakehouse-data/warehouse/bronze.db/lakehouse-data/...
        A relative LAKEHOUSE_DIR is read as lakehouse.config reads it: from the
        project root, which is where dbt runs and so the Spark driver's working
        folder (dbt's Jinja has no project path of its own to offer).
    -#}
    {%- set dir = env_var('LAKEHOUSE_DIR', 'lakehouse-data').rstrip('/') -%}
    {%- if dir.startswith('/') or ':/' in dir -%}
        {{- dir -}}
    {%- else -%}
        {%- set cwd = run_query("select reflect('java.lang.System', 'getProperty', 'user.dir')").columns[0].values()[0] -%}
        {{- cwd.rstrip('/') ~ '/' ~ dir -}}
    {%- endif -%}
{%- endmacro %}

{% macro bronze_events_ddl() -%}
    event_time timestamp, event_type string, product_id bigint, category_id bigint, category_code string, brand string, price double, user_id bigint, user_session string, event_date date, source string, kafka_topic string, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, source_file string, source_line bigint, ingested_at timestamp
{%- endmacro %}

{% macro bronze_quarantine_ddl() -%}
    raw_payload string, payload_bytes int, reason string, reason_detail string, source string, kafka_topic string, kafka_partition int, kafka_offset bigint, kafka_timestamp timestamp, source_file string, source_line bigint, ingested_at timestamp, ingested_date date
{%- endmacro %}

{% macro register_bronze_tables() %}
    {% if execute %}
        {% set root = lakehouse_dir() %}
        {% do run_query('create schema if not exists bronze') %}
        {% do register_bronze_table('events', bronze_events_ddl(), 'event_date', root ~ '/bronze/events') %}
        {% do register_bronze_table('quarantine', bronze_quarantine_ddl(), 'ingested_date', root ~ '/bronze/quarantine') %}
    {% endif %}
{% endmacro %}

{% macro register_bronze_table(name, columns, partition, location) %}
    {#- A registration that points elsewhere (a moved lakehouse, or one made by an
        older version at a relative path) is dropped first: the table is external,
        so only the catalog entry goes, never the data. One registered there already
        is left as it is (`create table if not exists` would not change it either). -#}
    {% if run_query("show tables in bronze like '" ~ name ~ "'").rows | length > 0 %}
        {% set registered = run_query('describe detail bronze.' ~ name).columns['location'].values()[0] %}
        {% if registered.replace('file:', '').rstrip('/') == location.replace('file:', '').rstrip('/') %}
            {{ return('') }}
        {% endif %}
        {% do run_query('drop table bronze.' ~ name) %}
    {% endif %}
    {% do run_query(
        "create table if not exists bronze." ~ name ~ " (" ~ columns ~ ") using delta"
        ~ " partitioned by (" ~ partition ~ ") location '" ~ location ~ "'"
    ) %}
{% endmacro %}
