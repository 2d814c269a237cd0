{#-
    Historical CLV, overall and per segment (DESIGN §7):
      historical_clv = avg_order_value x purchase_frequency x avg_customer_lifespan_years

    - avg_order_value: revenue / purchases, all purchases up to as_of_date;
    - purchase_frequency: purchases per purchasing customer in the 365 days up to as_of_date;
    - monthly_churn_rate: churned / customers_start summed over the last 12 complete months
      (retention_monthly; the month of as_of_date is complete when as_of_date is its last
      day); annual_churn_rate = 1 - (1 - monthly)^12;
    - avg_customer_lifespan_years = 1 / annual_churn_rate.
-#}
with

orders as (

    select * from {{ ref('int_orders_flagged') }}
    where is_purchase

),

customers as (

    select * from {{ ref('int_customers_segmented') }}

),

retention_monthly as (

    select * from {{ ref('retention_monthly') }}

),

reporting_dates as (

    select
        *,
        -- the first month not complete at as_of_date: the churn window ends before it
        cast({{ dbt.date_trunc('month', dbt.dateadd('day', 1, 'as_of_date')) }} as date)
            as incomplete_month
    from {{ ref('int_reporting_dates') }}

),

customer_purchases as (

    select
        orders.customer_id,
        count(*) as purchases,
        sum(orders.revenue) as revenue,
        sum(
            case
                when orders.ordered_date
                    > {{ dbt.dateadd('day', -365, 'reporting_dates.as_of_date') }}
                    then 1
                else 0
            end
        ) as purchases_last_365_days
    from orders
    cross join reporting_dates
    group by orders.customer_id

),

cells as (

    select
        customers.acquisition_channel,
        customers.region,
        count(*) as customers,
        sum(customer_purchases.purchases) as purchases,
        sum(customer_purchases.revenue) as revenue,
        sum(customer_purchases.purchases_last_365_days) as purchases_last_365_days,
        sum(case when customer_purchases.purchases_last_365_days > 0 then 1 else 0 end)
            as customers_last_365_days
    from customer_purchases
    inner join customers
        on customer_purchases.customer_id = customers.customer_id
    group by customers.acquisition_channel, customers.region

),

segment_cells as (

    {{ expand_segments('cells', [
        'customers', 'purchases', 'revenue', 'purchases_last_365_days', 'customers_last_365_days',
    ]) }}

),

segment_totals as (

    select
        segment_type,
        segment_value,
        sum(customers) as customers,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        sum(purchases_last_365_days) as purchases_last_365_days,
        sum(customers_last_365_days) as customers_last_365_days
    from segment_cells
    group by segment_type, segment_value

),

churn as (

    select
        retention_monthly.segment_type,
        retention_monthly.segment_value,
        case
            when sum(retention_monthly.customers_start) > 0
                then {{ ratio(
                    'sum(retention_monthly.churned_customers)',
                    'sum(retention_monthly.customers_start)',
                ) }}
        end as monthly_churn_rate
    from retention_monthly
    cross join reporting_dates
    where
        retention_monthly.month < reporting_dates.incomplete_month
        and retention_monthly.month
        >= {{ dbt.dateadd('month', -12, 'reporting_dates.incomplete_month') }}
    group by retention_monthly.segment_type, retention_monthly.segment_value

),

rates as (

    select
        segment_totals.*,
        churn.monthly_churn_rate,
        1 - power(1 - churn.monthly_churn_rate, 12) as annual_churn_rate
    from segment_totals
    left join churn
        on segment_totals.segment_type = churn.segment_type
        and segment_totals.segment_value = churn.segment_value

),

final as (

    select
        rates.segment_type,
        rates.segment_value,
        cast(rates.customers as integer) as customers,
        cast(rates.purchases as integer) as purchases,
        cast(rates.revenue as decimal(18, 2)) as revenue,
        {{ divide_money('rates.revenue', 'rates.purchases') }} as avg_order_value,
        cast(
            case
                when rates.customers_last_365_days > 0
                    then {{ ratio('rates.purchases_last_365_days', 'rates.customers_last_365_days') }}
            end
            as {{ type_double() }}
        ) as purchase_frequency,
        cast(rates.monthly_churn_rate as {{ type_double() }}) as monthly_churn_rate,
        cast(rates.annual_churn_rate as {{ type_double() }}) as annual_churn_rate,
        cast(
            case when rates.annual_churn_rate > 0 then 1 / rates.annual_churn_rate end
            as {{ type_double() }}
        ) as avg_customer_lifespan_years,
        {{ round_money(
            'case when rates.annual_churn_rate > 0 and rates.customers_last_365_days > 0'
            ~ ' then ' ~ ratio('rates.revenue', 'rates.purchases')
            ~ ' * ' ~ ratio('rates.purchases_last_365_days', 'rates.customers_last_365_days')
            ~ ' / rates.annual_churn_rate end'
        ) }} as historical_clv,
        reporting_dates.as_of_date
    from rates
    cross join reporting_dates

)

select * from final
