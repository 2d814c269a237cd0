{{ config(alias='nps_responses') }}

with

base as (

    select * from {{ ref('base_shop__nps_responses') }}

),

rejected as (

    select
        response_id,
        customer_id,
        responded_at,
        score,
        _extra,
        reject_reason,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'quarantined'

)

select * from rejected
