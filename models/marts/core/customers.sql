with

customers as (

    select * from {{ ref('int_customers_segmented') }}

),

purchases as (

    select * from {{ ref('int_customers_purchases_aggregated') }}

),

purchase_summary as (

    select * from {{ ref('int_customer_btyd_summary') }}

),

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

rfm as (

    select * from {{ ref('int_customers_rfm_scored') }}

),

lifetime_value as (

    select * from {{ clv_mart('customer_lifetime_value') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

current_month as (

    select
        customer_months.customer_id,
        customer_months.lifecycle_stage
    from customer_months
    inner join reporting_dates
        on customer_months.month = reporting_dates.as_of_month

),

joined as (

    select
        customers.customer_id,
        customers.email,
        customers.signup_at,
        customers.country_code,
        customers.region,
        customers.acquisition_channel,
        customers.acquisition_channel_raw,
        purchases.first_purchase_at,
        purchases.last_purchase_at,
        coalesce(purchases.purchase_count, 0) as purchase_count,
        coalesce(purchases.total_revenue, 0) as total_revenue,
        coalesce(purchases.order_count, 0) as order_count,
        coalesce(purchases.cancelled_order_count, 0) as cancelled_order_count,
        coalesce(purchases.refunded_order_count, 0) as refunded_order_count,
        purchase_summary.first_purchase_date,
        purchase_summary.last_purchase_date,
        current_month.lifecycle_stage,
        rfm.recency_score,
        rfm.frequency_score,
        rfm.monetary_score,
        rfm.frequency_monetary_score,
        rfm.rfm_segment,
        lifetime_value.p_alive,
        lifetime_value.predicted_clv,
        reporting_dates.as_of_date,
        reporting_dates.churn_inactivity_days
    from customers
    cross join reporting_dates
    left join purchases
        on customers.customer_id = purchases.customer_id
    left join purchase_summary
        on customers.customer_id = purchase_summary.customer_id
    left join current_month
        on customers.customer_id = current_month.customer_id
    left join rfm
        on customers.customer_id = rfm.customer_id
    left join lifetime_value
        on customers.customer_id = lifetime_value.customer_id
    where
        customers.signup_at is null
        or cast(customers.signup_at as date) <= reporting_dates.as_of_date
        or purchases.customer_id is not null

),

measured as (

    select
        *,
        {{ dbt.datediff('last_purchase_date', 'as_of_date', 'day') }}
            as days_since_last_purchase
    from joined

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
        {{ divide_money('total_revenue', 'nullif(purchase_count, 0)') }} as avg_order_value,
        cast(order_count as integer) as order_count,
        cast(cancelled_order_count as integer) as cancelled_order_count,
        cast(refunded_order_count as integer) as refunded_order_count,
        purchase_count > 0 as has_purchased,
        cast(days_since_last_purchase as integer) as days_since_last_purchase,
        cast(
            case
                when purchase_count > 1
                    then {{ ratio(
                        dbt.datediff('first_purchase_date', 'last_purchase_date', 'day'),
                        'purchase_count - 1',
                    ) }}
            end
            as {{ type_double() }}
        ) as avg_days_between_purchases,
        lifecycle_stage,
        recency_score,
        frequency_score,
        monetary_score,
        frequency_monetary_score,
        rfm_segment,
        days_since_last_purchase >= churn_inactivity_days as is_churned,
        case
            when days_since_last_purchase >= churn_inactivity_days
                then cast({{ dbt.dateadd('day', 'churn_inactivity_days', 'last_purchase_date') }} as date)
        end as churned_at,
        cast(p_alive as {{ type_double() }}) as p_alive,
        cast(predicted_clv as decimal(18, 2)) as predicted_clv,
        as_of_date
    from measured

)

select * from final
