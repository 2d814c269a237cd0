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

    Incremental (macros/incremental.sql): customers with a new order row or customer row since
    the watermark, or a purchase after the previous as_of_date, are recomputed from their cohort
    month (the pre-hook first removes their rows, so a customer whose only purchase was refunded
    disappears); every other customer only gets the months from the last month built before
    (whose month_end was the previous as_of_date) on, continuing the running totals from the
    month before it.
-#}
-- depends_on: {{ ref('base_shop__orders') }}
-- depends_on: {{ source('shop', 'orders') }}
-- depends_on: {{ source('shop', 'customers') }}
{{ config(
    materialized=incremental_where_supported(),
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'month'],
    on_schema_change='fail',
    pre_hook="{{ forget_customers(customer_months_to_recompute()) }}",
) }}

{{ check_customer_months_increment() }}

{#- the last month already built: from it on every customer gets rows again -#}
{%- set last_month = query_constant("select max(month) from " ~ this, 'date') %}

with

purchase_days as {{ inline_cte() }} (

    -- read twice (cohorts, monthly_purchases), each time filtered to the customers and months
    -- it needs: stored once for both, every one of its 8.5 M rows at 1 M customers was
    -- written first (0.2 s of a day's 1.4 s)
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

{% if is_incremental() %}

changed_customers as (

    {{ customer_months_to_recompute() }}

),

last_built_months as (

    select * from {{ this }}
    where month = {{ last_month }}

),

months_before as (

    -- each side filtered before the join: a join on the month expression read the whole table
    select
        customer_id,
        last_purchase_date,
        cumulative_purchases,
        cumulative_revenue
    from {{ this }}
    where month = cast({{ dbt.dateadd('month', -1, last_month) }} as date)

),

{% endif %}

cohorts as (

    select
        customer_id,
        min(purchase_month) as cohort_month
    from purchase_days
    {% if is_incremental() %}
    where customer_id in (select customer_id from changed_customers)
    {% endif %}
    group by customer_id

),

scope as (

    -- the customers and months to compute, and the running state before the first of them
    select
        customer_id,
        cohort_month,
        cohort_month as first_month,
        cast(null as date) as prior_last_purchase_date,
        cast(0 as {{ dbt.type_bigint() }}) as prior_cumulative_purchases,
        cast(0 as decimal(18, 2)) as prior_cumulative_revenue
    from cohorts

    {% if is_incremental() %}

    union all

    select
        latest.customer_id,
        latest.cohort_month,
        latest.month as first_month,
        prior.last_purchase_date as prior_last_purchase_date,
        coalesce(prior.cumulative_purchases, 0) as prior_cumulative_purchases,
        coalesce(prior.cumulative_revenue, 0) as prior_cumulative_revenue
    from last_built_months as latest
    left join months_before as prior
        on latest.customer_id = prior.customer_id
    where latest.customer_id not in (select customer_id from changed_customers)

    {% endif %}

),

monthly_purchases as (

    select
        customer_id,
        purchase_month as month,
        sum(purchases) as purchases,
        sum(revenue) as revenue,
        max(purchase_date) as last_purchase_date_in_month,
        coalesce(sum(days_since_previous_purchase), 0) as gap_days,
        -- every purchase after a customer's first ends a gap: a day's first purchase the gap
        -- from the previous purchase day, each further one on that day a gap of 0 days
        sum(
            case when days_since_previous_purchase is null then purchases - 1 else purchases end
        ) as gaps
    from purchase_days
    {% if is_incremental() %}
    where purchase_month >= {{ last_month }}
        or customer_id in (select customer_id from changed_customers)
    {% endif %}
    group by customer_id, purchase_month

),

sparse as (

    -- the months with a purchase, from each customer's first month to compute on; for a
    -- continuing customer also a state row for the month before, carrying the running totals
    select
        scope.customer_id,
        scope.cohort_month,
        scope.first_month,
        monthly_purchases.month,
        monthly_purchases.purchases,
        monthly_purchases.revenue,
        monthly_purchases.gap_days,
        monthly_purchases.gaps,
        monthly_purchases.last_purchase_date_in_month
    from scope
    inner join monthly_purchases
        on scope.customer_id = monthly_purchases.customer_id
        and scope.first_month <= monthly_purchases.month

    union all

    select
        customer_id,
        cohort_month,
        first_month,
        cast({{ dbt.dateadd('month', -1, 'first_month') }} as date) as month,
        prior_cumulative_purchases as purchases,
        prior_cumulative_revenue as revenue,
        0 as gap_days,
        0 as gaps,
        prior_last_purchase_date as last_purchase_date_in_month
    from scope
    where first_month > cohort_month

),

cumulative as (

    -- windows over purchase months only (one sort, shared partition and order); the months
    -- without a purchase are filled in below by a range join, not sorted
    select
        *,
        coalesce(
            lead(month) over (partition by customer_id order by month),
            cast('9999-12-01' as date)
        ) as next_purchase_month,
        max(last_purchase_date_in_month) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as last_purchase_date,
        max(last_purchase_date_in_month) over (
            partition by customer_id order by month
            rows between unbounded preceding and 1 preceding
        ) as last_purchase_date_before,
        sum(purchases) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as cumulative_purchases,
        sum(revenue) over (
            partition by customer_id order by month
            rows between unbounded preceding and current row
        ) as cumulative_revenue
    from sparse

),

expanded as (

    -- every month from a purchase month up to the next one carries its running state
    select
        cumulative.customer_id,
        cumulative.cohort_month,
        calendar_months.month,
        calendar_months.month_end,
        cast({{ dbt.dateadd('day', -1, 'calendar_months.month') }} as date) as previous_month_end,
        case when calendar_months.month = cumulative.month then cumulative.purchases else 0 end
            as purchases,
        case when calendar_months.month = cumulative.month then cumulative.revenue else 0 end
            as revenue,
        case when calendar_months.month = cumulative.month then cumulative.gap_days else 0 end
            as gap_days,
        case when calendar_months.month = cumulative.month then cumulative.gaps else 0 end
            as gaps,
        cumulative.last_purchase_date,
        case
            when calendar_months.month = cumulative.month
                then cumulative.last_purchase_date_before
            else cumulative.last_purchase_date
        end as last_purchase_date_before_month,
        cumulative.cumulative_purchases,
        cumulative.cumulative_revenue
    from cumulative
    inner join calendar_months
        on cumulative.month <= calendar_months.month
        and cumulative.next_purchase_month > calendar_months.month
        and cumulative.first_month <= calendar_months.month

),

activity as (

    select
        cumulative.*,
        reporting_dates.churn_inactivity_days,
        reporting_dates.at_risk_inactive_days,
        {{ dbt.datediff('cumulative.last_purchase_date', 'cumulative.month_end', 'day') }}
            as days_since_last_purchase,
        -- days from the last purchase before the month to the end of the previous month
        {{ dbt.datediff('last_purchase_date_before_month', 'previous_month_end', 'day') }}
            as days_inactive_at_start
    from expanded as cumulative
    cross join reporting_dates

),

transitions as (

    select
        *,
        days_since_last_purchase < churn_inactivity_days as is_active_at_end,
        coalesce(days_inactive_at_start < churn_inactivity_days, false) as is_active_at_start,
        month = cohort_month as is_new
    from activity

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
        cast(transitions.purchases as {{ dbt.type_bigint() }}) as purchases,
        cast(transitions.revenue as decimal(18, 2)) as revenue,
        cast(transitions.gap_days as {{ dbt.type_bigint() }}) as gap_days,
        cast(transitions.gaps as {{ dbt.type_bigint() }}) as gaps,
        cast(transitions.cumulative_purchases as {{ dbt.type_bigint() }}) as cumulative_purchases,
        cast(transitions.cumulative_revenue as decimal(18, 2)) as cumulative_revenue,
        transitions.last_purchase_date,
        cast(transitions.days_since_last_purchase as integer) as days_since_last_purchase,
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
        end as lifecycle_stage,
        transitions.churn_inactivity_days,
        {{ loaded_through() }} as _loaded_through
    from transitions
    inner join customers
        on transitions.customer_id = customers.customer_id

)

select * from final
