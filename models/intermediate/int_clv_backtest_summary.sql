{#-
    The BTYD summary at the calibration end (as_of_date - clv_holdout_days) for customers whose
    first purchase is on or before it, with the repeat purchase days they actually made in the
    holdout period (calibration end, as_of_date].
-#}
-- A table: clv_backtest and its two tests read it, and as a view each of them computed it again.
{{ config(materialized='table') }}

with

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

reporting_dates as (

    select
        as_of_date,
        cast(
            {{ dbt.dateadd('day', '-' ~ int_var('clv_holdout_days', 1), 'as_of_date') }} as date
        ) as calibration_end
    from {{ ref('int_reporting_dates') }}

),

split as (

    select
        purchase_days.customer_id,
        purchase_days.purchase_date,
        purchase_days.revenue,
        purchase_days.purchase_date <= reporting_dates.calibration_end as is_calibration,
        reporting_dates.calibration_end,
        reporting_dates.as_of_date
    from purchase_days
    cross join reporting_dates

),

per_customer as (

    select
        customer_id,
        calibration_end,
        as_of_date,
        min(purchase_date) as first_purchase_date,
        max(case when is_calibration then purchase_date end) as last_calibration_date,
        sum(case when is_calibration then 1 else 0 end) - 1 as frequency,
        sum(case when not is_calibration then 1 else 0 end) as actual_purchases
    from split
    group by customer_id, calibration_end, as_of_date

),

final as (

    select
        customer_id,
        calibration_end,
        {{ dbt.datediff('calibration_end', 'as_of_date', 'day') }}
            as holdout_days,
        frequency,
        {{ dbt.datediff('first_purchase_date', 'last_calibration_date', 'day') }}
            as recency,
        {{ dbt.datediff('first_purchase_date', 'calibration_end', 'day') }}
            as t_days,
        actual_purchases
    from per_customer
    where first_purchase_date <= calibration_end

)

select * from final
