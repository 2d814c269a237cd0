with

base as (

    select * from {{ ref('base_shop__nps_responses') }}

),

current_rows as (

    select
        response_key as response_id,
        customer_key as customer_id,
        responded_at_utc as responded_at,
        score_value as score,
        _source_file,
        _source_row,
        _loaded_at
    from base
    where row_disposition = 'current'

)

select * from current_rows
