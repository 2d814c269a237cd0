-- One row per month and segment, for every month from the first month with data to as_of_date.
with

calendar as (

    select
        count(*) as months,
        min(month) as first_month,
        max(month) as last_month
    from {{ ref('int_calendar_months') }}

),

per_segment as (

    select
        segment_type,
        segment_value,
        count(*) as months,
        count(distinct month) as distinct_months,
        min(month) as first_month,
        max(month) as last_month
    from {{ ref('retention_monthly') }}
    group by segment_type, segment_value

)

select per_segment.*
from per_segment
cross join calendar
where
    per_segment.months != calendar.months
    or per_segment.distinct_months != calendar.months
    or per_segment.first_month != calendar.first_month
    or per_segment.last_month != calendar.last_month
