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
        cast(_source_row as bigint) as _source_row
    from orders

)

select * from final
