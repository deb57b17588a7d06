-- Daily funnel per brand (`unknown` when the brand is empty): a session counts once in
-- every brand it touched, at the step it reached there (see the dimension_funnel macro).

{{
    config(
        unique_key=['session_date', 'brand'],
    )
}}

{{ dimension_funnel("coalesce(events.brand, 'unknown')", 'brand', arrival_window()) }}
