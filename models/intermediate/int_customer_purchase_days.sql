{#-
    One row per customer and purchase day (several purchases on one day are one purchase day of
    their summed revenue, as in the BTYD literature), with the gap to the previous purchase day.

    Incremental like int_orders_flagged: the customers to recompute get all their days again.
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

purchases as (

    select * from {{ ref('int_orders_flagged') }}
    where is_purchase
    {% if is_incremental() %}
        and customer_id in (select customer_id from customers_to_recompute)
    {% endif %}

),

days as (

    select
        customer_id,
        ordered_date as purchase_date,
        count(*) as purchases,
        cast(sum(revenue) as decimal(18, 2)) as revenue
    from purchases
    group by customer_id, ordered_date

),

sequenced as (

    select
        customer_id,
        purchase_date,
        cast({{ dbt.date_trunc('month', 'purchase_date') }} as date) as purchase_month,
        purchases,
        revenue,
        row_number() over (
            partition by customer_id order by purchase_date
        ) as purchase_day_number,
        lag(purchase_date) over (
            partition by customer_id order by purchase_date
        ) as previous_purchase_date
    from days

),

final as (

    select
        *,
        {{ dbt.datediff('previous_purchase_date', 'purchase_date', 'day') }}
            as days_since_previous_purchase,
        (
            select reporting_dates.as_of_date
            from {{ ref('int_reporting_dates') }} as reporting_dates
        ) as _as_of_date,
        {{ sources_loaded_through() }} as _loaded_through
    from sequenced

)

select * from final
