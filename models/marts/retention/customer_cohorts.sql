{#-
    Cohort retention: one row per cohort month (month of first purchase), period number (months
    since the cohort month, 0 .. the month of as_of_date) and segment, including periods in
    which no customer of the cohort purchased. A customer is active in a period when they
    purchased in it, so period 0 retention is 1 by construction.
-#}
with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

cells as (

    select
        cohort_month,
        period_number,
        acquisition_channel,
        region,
        count(*) as cohort_customers,
        sum(case when purchases > 0 then 1 else 0 end) as active_customers,
        sum(revenue) as revenue
    from customer_months
    group by cohort_month, period_number, acquisition_channel, region

),

segment_cells as (

    {{ expand_segments('cells', [
        'cohort_month', 'period_number', 'cohort_customers', 'active_customers', 'revenue',
    ]) }}

),

periods as (

    select
        segment_type,
        segment_value,
        cohort_month,
        period_number,
        sum(cohort_customers) as cohort_size,
        sum(active_customers) as active_customers,
        sum(revenue) as revenue
    from segment_cells
    group by segment_type, segment_value, cohort_month, period_number

),

cumulated as (

    select
        *,
        sum(revenue) over (
            partition by segment_type, segment_value, cohort_month
            order by period_number
            rows between unbounded preceding and current row
        ) as cumulative_revenue,
        max(case when period_number = 0 then revenue end) over (
            partition by segment_type, segment_value, cohort_month
        ) as period_0_revenue
    from periods

),

final as (

    select
        cohort_month,
        period_number,
        segment_type,
        segment_value,
        cast(cohort_size as integer) as cohort_size,
        cast(active_customers as integer) as active_customers,
        {{ ratio('active_customers', 'cohort_size') }} as retention_rate,
        cast(revenue as decimal(18, 2)) as revenue,
        {{ divide_money('cumulative_revenue', 'cohort_size') }} as cumulative_revenue_per_customer,
        cast(
            case when period_0_revenue > 0 then {{ ratio('revenue', 'period_0_revenue') }} end
            as {{ type_double() }}
        ) as revenue_retention_rate,
        {{ retention_phase('period_number') }} as retention_phase
    from cumulated

)

select * from final
