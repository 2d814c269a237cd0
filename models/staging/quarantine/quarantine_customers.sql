{{ config(alias='customers') }}

with

base as (

    select * from {{ ref('base_shop__customers') }}

),

rejected as (

    select
        customer_id,
        email,
        signup_at,
        country,
        acquisition_channel,
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
