-- Typed projection of int_orders_flagged. A view: a second copy of 6.5 M orders took 15 s of
-- every build, and BI tools read the published Parquet copy, never this view. A table on Spark,
-- where BI reads the marts schema and a view is planned again by every query.
{{ config(materialized='table' if target.type == 'spark' else 'view') }}

with

orders as (

    select * from {{ ref('int_orders_flagged') }}

),

final as (

    select
        order_id,
        customer_id,
        ordered_at,
        ordered_date,
        order_month,
        status,
        is_purchase,
        is_cancelled,
        is_refunded,
        is_pending,
        cast(purchase_number as integer) as purchase_number,
        currency,
        cast(amount_original as decimal(18, 4)) as amount_original,
        cast(amount as decimal(18, 2)) as amount,
        revenue,
        updated_at,
        _source_file,
        cast(_source_row as bigint) as _source_row,
        _loaded_at
    from orders

)

select * from final
