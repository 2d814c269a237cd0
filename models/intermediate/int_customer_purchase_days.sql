{#-
    One row per customer and purchase day (several purchases on one day are one purchase day of
    their summed revenue, as in the BTYD literature), with the gap to the previous purchase day.
-#}
{{ config(materialized='table') }}

with

purchases as (

    select * from {{ ref('int_orders_flagged') }}
    where is_purchase

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
            as days_since_previous_purchase
    from sequenced

)

select * from final
