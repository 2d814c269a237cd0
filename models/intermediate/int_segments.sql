-- Every (segment_type, segment_value) that a segmented mart reports: 'all' plus each channel
-- group and region that a current customer has.
with

customers as (

    select * from {{ ref('int_customers_segmented') }}

),

segments as (

    select
        'all' as segment_type,
        'all' as segment_value

    union all

    select distinct
        'acquisition_channel' as segment_type,
        acquisition_channel as segment_value
    from customers

    union all

    select distinct
        'region' as segment_type,
        region as segment_value
    from customers

)

select * from segments
