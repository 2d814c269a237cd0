-- Current customers with the segment labels every segmented mart uses.
with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

channel_groups as (

    select * from {{ ref('channel_groups') }}

),

country_regions as (

    select * from {{ ref('country_regions') }}

),

segmented as (

    select
        customers.customer_id,
        customers.email,
        customers.signup_at,
        customers.country_code,
        coalesce(country_regions.region, 'Unknown') as region,
        coalesce(channel_groups.channel_group, 'other') as acquisition_channel,
        customers.acquisition_channel_raw
    from customers
    left join channel_groups
        on lower(customers.acquisition_channel_raw) = channel_groups.channel_raw
    left join country_regions
        on customers.country_code = country_regions.country_code

)

select * from segmented
