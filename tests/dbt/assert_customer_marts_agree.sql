-- Rules the customer marts must keep beyond keys and ranges, each a bug a range test lets through
-- (an inverted churn flag, a purchaser without a stage, a win-back list of active customers):
-- the churn flag and lifecycle stage follow from the days since the last purchase, purchasers
-- have a stage and RFM scores, no purchase is after as_of_date, customers shows the CLV mart's
-- prediction, a non-purchase carries no revenue, a cohort never has more active customers than
-- members. Returns the rows that break a rule, with the rule.
with

customers as (

    select * from {{ ref('customers') }}

),

customer_lifetime_value as (

    -- a source off DuckDB, where the pipeline writes it: a ref would disable the test there
    select * from {{ clv_mart('customer_lifetime_value') }}

),

winback_candidates as (

    select * from {{ ref('winback_candidates') }}

),

orders as (

    select * from {{ ref('orders') }}

),

customer_cohorts as (

    select * from {{ ref('customer_cohorts') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

customer_rules as (

    select
        'customers' as relation,
        customers.customer_id as row_key,
        case
            when customers.has_purchased and (
                    customers.lifecycle_stage is null
                    or customers.is_churned is null
                    or customers.recency_score is null
                    or customers.frequency_score is null
                    or customers.monetary_score is null
                    or customers.rfm_segment is null
                ) then 'a purchaser without a lifecycle stage, churn flag or RFM score'
            when not customers.has_purchased and (
                    customers.lifecycle_stage is not null or customers.is_churned is not null
                ) then 'a customer without purchases with a lifecycle stage or churn flag'
            when customers.is_churned != (
                    customers.days_since_last_purchase >= reporting_dates.churn_inactivity_days
                ) then 'is_churned disagrees with days_since_last_purchase'
            when customers.is_churned != (customers.lifecycle_stage = 'churned')
                then 'is_churned disagrees with lifecycle_stage'
            when cast(customers.last_purchase_at as date) > reporting_dates.as_of_date
                or customers.first_purchase_at > customers.last_purchase_at
                then 'a purchase after as_of_date, or a first purchase after the last'
            when (customers.predicted_clv is null) != (customer_lifetime_value.predicted_clv is null)
                or abs(customers.predicted_clv - customer_lifetime_value.predicted_clv) > 0.01
                then 'predicted_clv differs from customer_lifetime_value'
        end as broken_rule
    from customers
    cross join reporting_dates
    left join customer_lifetime_value
        on customers.customer_id = customer_lifetime_value.customer_id

),

winback_rules as (

    select
        'winback_candidates' as relation,
        winback_candidates.customer_id as row_key,
        'inactive for fewer than winback_min_inactive_days' as broken_rule
    from winback_candidates
    cross join reporting_dates
    where
        winback_candidates.days_since_last_purchase
        < reporting_dates.winback_min_inactive_days

),

order_rules as (

    select
        'orders' as relation,
        order_id as row_key,
        'revenue on an order that is not a purchase' as broken_rule
    from orders
    where not is_purchase and revenue != 0

),

cohort_rules as (

    select
        'customer_cohorts' as relation,
        {{ dbt.concat([
            'segment_type', "'/'", 'segment_value', "'/'",
            'cast(cohort_month as ' ~ dbt.type_string() ~ ')', "'/'",
            'cast(period_number as ' ~ dbt.type_string() ~ ')',
        ]) }} as row_key,
        'more active customers than members, or no retention rate' as broken_rule
    from customer_cohorts
    where active_customers > cohort_size or (cohort_size > 0 and retention_rate is null)

),

final as (

    select * from customer_rules
    where broken_rule is not null
    union all
    select * from winback_rules
    union all
    select * from order_rules
    union all
    select * from cohort_rules

)

select * from final
