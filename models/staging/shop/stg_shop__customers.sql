with

base as (

    select * from {{ ref('base_shop__customers') }}

),

current_rows as (

    select
        customer_key as customer_id,
        email_address as email,
        signup_at_utc as signup_at,
        country_code,
        acquisition_channel_raw,
        updated_at_utc as updated_at,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'current'

)

select * from current_rows
