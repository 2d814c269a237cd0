{{ config(alias='orders') }}

with

base as (

    select * from {{ ref('base_shop__orders') }}

),

rejected as (

    select
        order_id,
        customer_id,
        ordered_at,
        status,
        amount,
        currency,
        updated_at,
        _extra,
        reject_reason,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'quarantined'

)

select * from rejected
