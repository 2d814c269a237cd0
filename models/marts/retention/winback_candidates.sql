{#-
    Customers to win back: at least one purchase, inactive for winback_min_inactive_days or
    more at as_of_date. Ranked by predicted CLV (which weighs their value by the probability that
    they are still alive), then by the revenue they brought; ready for a CRM export.
-#}
with

customers as (

    select * from {{ ref('customers') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

candidates as (

    select
        customers.*,
        row_number() over (
            order by
                coalesce(customers.predicted_clv, 0) desc,
                customers.total_revenue desc,
                {{ byte_order('customers.customer_id') }} asc
        ) as winback_rank
    from customers
    cross join reporting_dates
    where
        customers.purchase_count > 0
        and customers.days_since_last_purchase >= reporting_dates.winback_min_inactive_days

),

final as (

    select
        cast(winback_rank as integer) as winback_rank,
        customer_id,
        email,
        acquisition_channel,
        region,
        rfm_segment,
        lifecycle_stage,
        last_purchase_at,
        days_since_last_purchase,
        purchase_count,
        total_revenue,
        avg_order_value,
        p_alive,
        predicted_clv,
        as_of_date
    from candidates

)

select * from final
