{#-
    The BTYD summary per customer with a purchase up to as_of_date (time unit: days):
    frequency = repeat purchase days, recency = age at the last purchase day, t_days = age at
    as_of_date, repeat_revenue = revenue of the repeat purchase days (exact decimal; the CLV code
    divides it by frequency itself, so every engine fits on bit-identical numbers) and
    monetary_value = repeat_revenue / frequency.
-#}
-- A table: clv_model_parameters, customer_lifetime_value, customers and its two tests read it,
-- and as a view each of them computed it again.
{{ config(materialized='table') }}

with

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

per_customer as (

    select
        customer_id,
        min(purchase_date) as first_purchase_date,
        max(purchase_date) as last_purchase_date,
        count(*) - 1 as frequency,
        sum(case when purchase_day_number > 1 then revenue end) as repeat_revenue
    from purchase_days
    group by customer_id

),

final as (

    select
        per_customer.customer_id,
        per_customer.first_purchase_date,
        per_customer.last_purchase_date,
        per_customer.frequency,
        {{ dbt.datediff('per_customer.first_purchase_date', 'per_customer.last_purchase_date', 'day') }}
            as recency,
        {{ dbt.datediff('per_customer.first_purchase_date', 'reporting_dates.as_of_date', 'day') }}
            as t_days,
        cast(coalesce(per_customer.repeat_revenue, 0) as decimal(18, 2)) as repeat_revenue,
        cast(
            case
                when per_customer.frequency > 0
                    then per_customer.repeat_revenue / per_customer.frequency
            end
            as {{ type_double() }}
        ) as monetary_value,
        reporting_dates.as_of_date
    from per_customer
    cross join reporting_dates

)

select * from final
