-- Daily funnel per top-level category: a session counts once in every category it
-- touched, at the step it reached there (see the dimension_funnel macro).
-- Incremental: every session dated from the window's `read_start` on is recomputed (a
-- session that received events started then or later), so those dates are replaced in one
-- Delta commit (REPLACE WHERE, macros/incremental_writes.sql). Unlike a MERGE, that also
-- drops a row whose sessions all moved away (two sessions joined by a late event).

{{
    config(
        incremental_strategy='insert_overwrite',
        partition_by=['session_date'],
        meta={'rebuilds_from': 'read_start'},
    )
}}

{{ dimension_funnel('events.category_top', 'category_top', arrival_window()) }}
