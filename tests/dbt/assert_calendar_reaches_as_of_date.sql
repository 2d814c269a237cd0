-- The monthly calendar ends at the month of as_of_date (int_calendar_months generates at most
-- 1,200 months from the first month with data: a longer span would leave the monthly marts
-- without their latest months). Returns a row when it does not.
with

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

calendar as (

    select max(month) as last_month
    from {{ ref('int_calendar_months') }}

)

select
    calendar.last_month,
    reporting_dates.as_of_month
from calendar
cross join reporting_dates
where
    reporting_dates.as_of_month is not null
    and (calendar.last_month is null or calendar.last_month != reporting_dates.as_of_month)
