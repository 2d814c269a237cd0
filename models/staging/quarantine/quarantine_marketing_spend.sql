{{ config(alias='marketing_spend') }}

with

base as (

    select * from {{ ref('base_shop__marketing_spend') }}

),

rejected as (

    select
        month,
        channel,
        spend_type,
        amount,
        currency,
        _extra,
        reject_reason,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'quarantined'

)

select * from rejected
