{#-
    One row per customer with at least one order up to as_of_date: purchase and order counts.

    Incremental like int_customer_purchase_days: the customers to recompute (macros/incremental.sql)
    lose their row in the pre-hook and get it again from all their orders; a customer left without
    orders gets none.
-#}
-- depends_on: {{ ref('base_shop__orders') }}
-- depends_on: {{ ref('stg_shop__orders') }}
-- depends_on: {{ ref('int_reporting_dates') }}
-- depends_on: {{ source('shop', 'orders') }}
-- depends_on: {{ source('shop', 'customers') }}
{{ config(**per_customer_increment()) }}

{{ check_as_of_not_earlier() }}

with

{% if is_incremental() %}

customers_to_recompute as (

    {{ customers_to_recompute() }}

),

{% endif %}

orders as (

    select * from {{ ref('int_orders_flagged') }}
    {% if is_incremental() %}
    where customer_id in (select customer_id from customers_to_recompute)
    {% endif %}

),

aggregated as (

    select
        customer_id,
        min(case when is_purchase then ordered_at end) as first_purchase_at,
        max(case when is_purchase then ordered_at end) as last_purchase_at,
        count(case when is_purchase then 1 end) as purchase_count,
        cast(sum(revenue) as decimal(18, 2)) as total_revenue,
        count(*) as order_count,
        count(case when is_cancelled then 1 end) as cancelled_order_count,
        count(case when is_refunded then 1 end) as refunded_order_count
    from orders
    group by customer_id

),

final as (

    select
        *,
        (
            select reporting_dates.as_of_date
            from {{ ref('int_reporting_dates') }} as reporting_dates
        ) as _as_of_date,
        {{ loaded_through() }} as _loaded_through
    from aggregated

)

select * from final
