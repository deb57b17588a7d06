-- Rejected records, renamed for the quarantine report; one row per rejected record.

with

source as (

    select * from {{ source('bronze', 'quarantine') }}

),

renamed as (

    select
        reason,
        reason_detail,
        raw_payload,
        payload_bytes,
        source as ingest_source,
        kafka_topic,
        kafka_partition,
        kafka_offset,
        source_file,
        source_line,
        ingested_at,
        ingested_date
    from source

)

select * from renamed
