-- Typed, renamed and de-duplicated events; category_code split into levels and
-- invalid prices flagged. Nothing else: no sessions, no business rules.

with

source as (

    select
        *,
        -- the price as text for the window below: Spark wraps a double partition key in a
        -- NaN/-0.0 normalisation, and a window partitioned by an expression takes no
        -- filter pushed through it (every incremental run would de-duplicate all of bronze)
        cast(price as string) as price_key
    from {{ source('bronze', 'events') }}

),

ranked as (

    -- Exact duplicates: identical on all nine REES46 fields. The first one ingested wins.
    -- event_date is in the partition list (it is a function of event_time, so the groups
    -- are the same) so that a filter on event_date is pushed below the window to the scan.
    select
        *,
        row_number() over (
            partition by
                event_date, event_time, event_type, product_id, category_id, category_code,
                brand, price_key, user_id, user_session
            order by ingested_at, source_line, kafka_partition, kafka_offset
        ) as duplicate_rank
    from source

),

renamed as (

    select
        sha2(
            concat_ws(
                '|',
                cast(event_time as string), event_type, cast(product_id as string),
                cast(category_id as string), coalesce(category_code, '\\N'), coalesce(brand, '\\N'),
                cast(price as string), cast(user_id as string), coalesce(user_session, '\\N')
            ),
            256
        ) as event_id,
        cast(event_time as timestamp) as event_time,
        cast(event_date as date) as event_date,
        lower(event_type) as event_type,
        cast(product_id as bigint) as product_id,
        cast(category_id as bigint) as category_id,
        nullif(category_code, '') as category_code,
        coalesce(nullif(split(category_code, '\\.')[0], ''), 'unknown') as category_top,
        nullif(split(category_code, '\\.')[1], '') as category_level_2,
        nullif(split(category_code, '\\.')[2], '') as category_level_3,
        nullif(brand, '') as brand,
        cast(price as double) as price,
        coalesce(price > 0, false) as is_valid_price,
        cast(user_id as bigint) as user_id,
        nullif(user_session, '') as user_session,
        source as ingest_source,
        ingested_at
    from ranked
    where duplicate_rank = 1

)

select * from renamed
