with

customers as (

    select * from {{ ref('stg_shop__customers') }}

),

purchases as (

    select * from {{ ref('int_customers_purchases_aggregated') }}

),

channel_groups as (

    select * from {{ ref('channel_groups') }}

),

country_regions as (

    select * from {{ ref('country_regions') }}

),

reporting_window as (

    select {{ as_of_date() }} as as_of_date

),

joined as (

    select
        customers.customer_id,
        customers.email,
        customers.signup_at,
        customers.country_code,
        coalesce(country_regions.region, 'Unknown') as region,
        coalesce(channel_groups.channel_group, 'other') as acquisition_channel,
        customers.acquisition_channel_raw,
        purchases.first_purchase_at,
        purchases.last_purchase_at,
        coalesce(purchases.purchase_count, 0) as purchase_count,
        coalesce(purchases.total_revenue, 0) as total_revenue,
        coalesce(purchases.order_count, 0) as order_count,
        coalesce(purchases.cancelled_order_count, 0) as cancelled_order_count,
        coalesce(purchases.refunded_order_count, 0) as refunded_order_count,
        reporting_window.as_of_date
    from customers
    cross join reporting_window
    left join purchases
        on customers.customer_id = purchases.customer_id
    left join channel_groups
        on lower(customers.acquisition_channel_raw) = channel_groups.channel_raw
    left join country_regions
        on customers.country_code = country_regions.country_code
    where
        customers.signup_at is null
        or cast(customers.signup_at as date) <= reporting_window.as_of_date
        or purchases.customer_id is not null

),

final as (

    select
        customer_id,
        email,
        signup_at,
        country_code,
        region,
        acquisition_channel,
        acquisition_channel_raw,
        first_purchase_at,
        last_purchase_at,
        cast({{ dbt.date_trunc('month', 'first_purchase_at') }} as date) as cohort_month,
        cast(purchase_count as integer) as purchase_count,
        cast(total_revenue as decimal(18, 2)) as total_revenue,
        cast(
            case when purchase_count > 0 then total_revenue / purchase_count end
            as decimal(18, 2)
        ) as avg_order_value,
        cast(order_count as integer) as order_count,
        cast(cancelled_order_count as integer) as cancelled_order_count,
        cast(refunded_order_count as integer) as refunded_order_count,
        purchase_count > 0 as has_purchased,
        as_of_date
    from joined

)

select * from final
