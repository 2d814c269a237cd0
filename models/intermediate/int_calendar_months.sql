{#-
    Every calendar month from the first month with data (a purchase, a spend row or an NPS
    answer) to the month of as_of_date, with no gaps. month_end is the month's last day, or
    as_of_date for the month that contains it.
-#}
{{ config(materialized='table') }}

with

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

first_months as (

    select cast(min(orders.ordered_at) as date) as first_date
    from {{ ref('stg_shop__orders') }} as orders
    cross join reporting_dates
    where cast(orders.ordered_at as date) <= reporting_dates.as_of_date
    union all
    select min(spend_month) as first_date from {{ ref('stg_shop__marketing_spend') }}
    union all
    select min(cast(responded_at as date)) as first_date from {{ ref('stg_shop__nps_responses') }}

),

bounds as (

    select cast({{ dbt.date_trunc('month', 'min(first_date)') }} as date) as first_month
    from first_months

),

numbers as (

    {{ dbt.generate_series(1200) }}

),

months as (

    select
        cast(
            {{ dbt.dateadd('month', 'numbers.generated_number - 1', 'bounds.first_month') }}
            as date
        ) as month
    from numbers
    cross join bounds

),

final as (

    select
        months.month,
        case
            when months.month = reporting_dates.as_of_month then reporting_dates.as_of_date
            else cast({{ dbt.dateadd('day', -1, dbt.dateadd('month', 1, 'months.month')) }} as date)
        end as month_end
    from months
    cross join reporting_dates
    where months.month <= reporting_dates.as_of_month

)

select * from final
