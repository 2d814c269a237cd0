{#-
    Current orders up to as_of_date with the flags every mart uses. A purchase is a completed
    order: cancelled, refunded and pending orders stay visible but carry no revenue.
    purchase_number counts a customer's purchases in time order (null for non-purchases).
-#}
{{ config(materialized='table') }}

with

orders as (

    select * from {{ ref('stg_shop__orders') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

in_window as (

    select orders.*
    from orders
    cross join reporting_dates
    where cast(orders.ordered_at as date) <= reporting_dates.as_of_date

),

flagged as (

    select
        order_id,
        customer_id,
        ordered_at,
        cast(ordered_at as date) as ordered_date,
        cast({{ dbt.date_trunc('month', 'ordered_at') }} as date) as order_month,
        status,
        status = 'completed' as is_purchase,
        status = 'cancelled' as is_cancelled,
        status = 'refunded' as is_refunded,
        status = 'pending' as is_pending,
        currency,
        amount_original,
        amount,
        cast(case when status = 'completed' then amount else 0 end as decimal(18, 2)) as revenue,
        updated_at,
        _source_file,
        _source_row
    from in_window

),

numbered as (

    select
        *,
        case
            when is_purchase
                then row_number() over (
                    partition by customer_id, is_purchase
                    order by ordered_at, order_id
                )
        end as purchase_number
    from flagged

)

select * from numbered
