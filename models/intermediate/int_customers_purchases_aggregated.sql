{{ config(materialized='table') }}

-- One row per customer with at least one order up to as_of_date: purchase and order counts.
with

orders as (

    select * from {{ ref('int_orders_flagged') }}

),

aggregated as (

    select
        customer_id,
        min(case when is_purchase then ordered_at end) as first_purchase_at,
        max(case when is_purchase then ordered_at end) as last_purchase_at,
        count(case when is_purchase then 1 end) as purchase_count,
        cast(sum(revenue) as decimal(18, 2)) as total_revenue,
        count(*) as order_count,
        count(case when is_cancelled then 1 end) as cancelled_order_count,
        count(case when is_refunded then 1 end) as refunded_order_count
    from orders
    group by customer_id

)

select * from aggregated
