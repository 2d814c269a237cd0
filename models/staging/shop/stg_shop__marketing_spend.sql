with

base as (

    select * from {{ ref('base_shop__marketing_spend') }}

),

current_rows as (

    select
        spend_month,
        channel_key as channel_raw,
        channel_group,
        spend_type_key as spend_type,
        amount_value as amount_original,
        currency_code as currency,
        amount_reporting as amount,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'current'

)

select * from current_rows
