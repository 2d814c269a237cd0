with

base as (

    select * from {{ ref('base_shop__orders') }}

),

current_rows as (

    select
        order_key as order_id,
        customer_key as customer_id,
        ordered_at_utc as ordered_at,
        order_status as status,
        amount_value as amount_original,
        currency_code as currency,
        amount_reporting as amount,
        updated_at_utc as updated_at,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'current'

)

select * from current_rows
