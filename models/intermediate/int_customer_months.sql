{#-
    One row per customer and calendar month, from the customer's first purchase month (the
    cohort) to the month of as_of_date, including months without purchases. It carries the
    activity state the retention marts count:

    - active at a date d: at least one purchase in the churn_inactivity_days days up to and
      including d, i.e. days from the last purchase to d < churn_inactivity_days;
    - is_active_at_end: active at month_end; is_active_at_start: active at the end of the
      previous month (never in the cohort month: there was no purchase before);
    - is_new: first purchase in the month; is_reactivated: purchased in the month, not active at
      its start, first purchase earlier; is_retained: active at start and end; is_churned:
      active at start, not at end.
    - lifecycle_stage: new, reactivated, active, at_risk (active, but no purchase for
      at_risk_inactive_days = half the churn window) or churned (not active at month end).
-#}
{{ config(materialized='table') }}

with

purchase_days as (

    select * from {{ ref('int_customer_purchase_days') }}

),

calendar_months as (

    select * from {{ ref('int_calendar_months') }}

),

customers as (

    select * from {{ ref('int_customers_segmented') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

cohorts as (

    select
        customer_id,
        min(purchase_month) as cohort_month
    from purchase_days
    group by customer_id

),

monthly_purchases as (

    select
        customer_id,
        purchase_month as month,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        max(purchase_date) as last_purchase_date_in_month,
        sum(days_since_previous_purchase) as gap_days,
        count(days_since_previous_purchase) as gaps
    from purchase_days
    group by customer_id, purchase_month

),

spined as (

    select
        cohorts.customer_id,
        cohorts.cohort_month,
        calendar_months.month,
        calendar_months.month_end
    from cohorts
    inner join calendar_months
        on cohorts.cohort_month <= calendar_months.month

),

joined as (

    select
        spined.customer_id,
        spined.cohort_month,
        spined.month,
        spined.month_end,
        coalesce(monthly_purchases.purchases, 0) as purchases,
        coalesce(monthly_purchases.revenue, 0) as revenue,
        coalesce(monthly_purchases.gap_days, 0) as gap_days,
        coalesce(monthly_purchases.gaps, 0) as gaps,
        monthly_purchases.last_purchase_date_in_month
    from spined
    left join monthly_purchases
        on spined.customer_id = monthly_purchases.customer_id
        and spined.month = monthly_purchases.month

),

cumulative as (

    select
        *,
        max(last_purchase_date_in_month) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as last_purchase_date,
        sum(purchases) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as cumulative_purchases,
        sum(revenue) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as cumulative_revenue
    from joined

),

activity as (

    select
        cumulative.*,
        reporting_dates.churn_inactivity_days,
        reporting_dates.at_risk_inactive_days,
        {{ dbt.datediff('cumulative.last_purchase_date', 'cumulative.month_end', 'day') }}
            as days_since_last_purchase
    from cumulative
    cross join reporting_dates

),

active as (

    select
        *,
        days_since_last_purchase < churn_inactivity_days as is_active_at_end
    from activity

),

transitions as (

    select
        *,
        coalesce(
            lag(is_active_at_end) over (partition by customer_id order by month), false
        ) as is_active_at_start,
        month = cohort_month as is_new
    from active

),

final as (

    select
        transitions.customer_id,
        transitions.month,
        transitions.month_end,
        transitions.cohort_month,
        cast(
            {{ dbt.datediff('transitions.cohort_month', 'transitions.month', 'month') }}
            as integer
        ) as period_number,
        customers.acquisition_channel,
        customers.region,
        transitions.purchases,
        transitions.revenue,
        transitions.gap_days,
        transitions.gaps,
        transitions.cumulative_purchases,
        transitions.cumulative_revenue,
        transitions.last_purchase_date,
        transitions.days_since_last_purchase,
        transitions.is_active_at_start,
        transitions.is_active_at_end,
        transitions.is_new,
        transitions.purchases > 0
        and not transitions.is_active_at_start
        and not transitions.is_new as is_reactivated,
        transitions.is_active_at_start and transitions.is_active_at_end as is_retained,
        transitions.is_active_at_start and not transitions.is_active_at_end as is_churned,
        case
            when transitions.is_new then 'new'
            when transitions.purchases > 0 and not transitions.is_active_at_start then 'reactivated'
            when not transitions.is_active_at_end then 'churned'
            when transitions.days_since_last_purchase >= transitions.at_risk_inactive_days
                then 'at_risk'
            else 'active'
        end as lifecycle_stage
    from transitions
    inner join customers
        on transitions.customer_id = customers.customer_id

)

select * from final
