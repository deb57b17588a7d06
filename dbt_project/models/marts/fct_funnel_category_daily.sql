-- Daily funnel per top-level category: a session counts once in every category it
-- touched, at the step it reached there (see the dimension_funnel macro).

{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['session_date', 'category_top'],
        on_schema_change='fail',
    )
}}

{{ dimension_funnel('events.category_top', 'category_top') }}
