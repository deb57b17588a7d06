-- Daily funnel per top-level category: a session counts once in every category it
-- touched, at the step it reached there (see the dimension_funnel macro).

{{
    config(
        unique_key=['session_date', 'category_top'],
    )
}}

{{ dimension_funnel('events.category_top', 'category_top', arrival_window()) }}
