-- Every staged event belongs to exactly one session, and the sessions mart counts
-- each of them once: returns a row for any event that is missing, duplicated or
-- assigned to a session absent from fct_sessions, and a row if the totals differ.

with

staged as (

    select event_id from {{ ref('stg_bronze__events') }}

),

sessionized as (

    select event_id, session_id from {{ ref('int_events_sessionized') }}

),

sessions as (

    select session_id, n_events from {{ ref('fct_sessions') }}

),

per_event as (

    select
        staged.event_id,
        count(sessionized.session_id) as n_sessions,
        count(sessions.session_id) as n_known_sessions
    from staged
    left join sessionized on staged.event_id = sessionized.event_id
    left join sessions on sessionized.session_id = sessions.session_id
    group by staged.event_id

),

bad_events as (

    select event_id as problem from per_event
    where n_sessions != 1 or n_known_sessions != 1

),

totals as (

    select concat('staged=', (select count(*) from staged), ' sessions_n_events=', sum(n_events)) as problem
    from sessions
    having sum(n_events) != (select count(*) from staged)

)

select * from bad_events
union all
select * from totals
