{#-
    customer_cohorts has exactly one row per period 0 .. (months from the cohort to as_of_date)
    for every cohort and segment, including periods in which nobody purchased.
-#}
with

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

per_cohort as (

    select
        segment_type,
        segment_value,
        cohort_month,
        count(*) as periods,
        count(distinct period_number) as distinct_periods,
        min(period_number) as first_period,
        max(period_number) as last_period
    from {{ ref('customer_cohorts') }}
    group by segment_type, segment_value, cohort_month

),

expected as (

    select
        per_cohort.*,
        {{ dbt.datediff('per_cohort.cohort_month', 'reporting_dates.as_of_month', 'month') }}
            as expected_last_period
    from per_cohort
    cross join reporting_dates

)

select *
from expected
where
    first_period != 0
    or last_period != expected_last_period
    or periods != expected_last_period + 1
    or distinct_periods != periods
