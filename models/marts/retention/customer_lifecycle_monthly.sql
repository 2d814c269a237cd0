-- Each customer's lifecycle stage in every month from their first purchase to as_of_date.
-- A view over the incremental int_customer_months table: a second copy of the largest table
-- would double the build time, and BI reads the published Parquet copy, never this view.
{{ config(materialized='view') }}

with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

final as (

    select
        customer_id,
        month,
        cohort_month,
        period_number,
        acquisition_channel,
        region,
        lifecycle_stage,
        is_active_at_start,
        is_active_at_end,
        cast(purchases as integer) as purchases,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(cumulative_purchases as integer) as cumulative_purchases,
        cast(days_since_last_purchase as integer) as days_since_last_purchase
    from customer_months

)

select * from final
