{#-
    Monthly retention counts per month and segment, with no gaps (months without activity have
    zeros). retention_monthly turns them into rates.
-#}
with

customer_months as (

    select * from {{ ref('int_customer_months') }}

),

calendar_months as (

    select * from {{ ref('int_calendar_months') }}

),

segments as (

    select * from {{ ref('int_segments') }}

),

marketing_spend as (

    select * from {{ ref('stg_shop__marketing_spend') }}

),

cells as (

    select
        month,
        acquisition_channel,
        region,
        sum(case when is_active_at_start then 1 else 0 end) as customers_start,
        sum(case when is_new then 1 else 0 end) as new_customers,
        sum(case when is_active_at_end then 1 else 0 end) as customers_end,
        sum(case when is_retained then 1 else 0 end) as retained_customers,
        sum(case when is_reactivated then 1 else 0 end) as reactivated_customers,
        sum(case when is_churned then 1 else 0 end) as churned_customers,
        sum(case when purchases > 0 then 1 else 0 end) as purchasing_customers,
        sum(case when cumulative_purchases >= 1 then 1 else 0 end) as customers_to_date,
        sum(case when cumulative_purchases >= 2 then 1 else 0 end) as repeat_customers_to_date,
        sum(gap_days) as gap_days,
        sum(gaps) as gaps,
        sum(purchases) as orders,
        sum(revenue) as revenue
    from customer_months
    group by month, acquisition_channel, region

),

segment_cells as (

    {{ expand_segments('cells', [
        'month', 'customers_start', 'new_customers', 'customers_end', 'retained_customers',
        'reactivated_customers', 'churned_customers', 'purchasing_customers',
        'customers_to_date', 'repeat_customers_to_date', 'gap_days', 'gaps', 'orders', 'revenue',
    ]) }}

),

segment_counts as (

    select
        segment_type,
        segment_value,
        month,
        sum(customers_start) as customers_start,
        sum(new_customers) as new_customers,
        sum(customers_end) as customers_end,
        sum(retained_customers) as retained_customers,
        sum(reactivated_customers) as reactivated_customers,
        sum(churned_customers) as churned_customers,
        sum(purchasing_customers) as purchasing_customers,
        sum(customers_to_date) as customers_to_date,
        sum(repeat_customers_to_date) as repeat_customers_to_date,
        sum(gap_days) as gap_days,
        sum(gaps) as gaps,
        sum(orders) as orders,
        sum(revenue) as revenue
    from segment_cells
    group by segment_type, segment_value, month

),

retention_spend as (

    select
        'all' as segment_type,
        'all' as segment_value,
        spend_month as month,
        sum(amount) as retention_spend
    from marketing_spend
    where spend_type = 'retention'
    group by spend_month

    union all

    select
        'acquisition_channel' as segment_type,
        channel_group as segment_value,
        spend_month as month,
        sum(amount) as retention_spend
    from marketing_spend
    where spend_type = 'retention'
    group by channel_group, spend_month

),

spined as (

    select
        segments.segment_type,
        segments.segment_value,
        calendar_months.month
    from segments
    cross join calendar_months

),

counts as (

    select
        spined.month,
        spined.segment_type,
        spined.segment_value,
        coalesce(segment_counts.customers_start, 0) as customers_start,
        coalesce(segment_counts.new_customers, 0) as new_customers,
        coalesce(segment_counts.customers_end, 0) as customers_end,
        coalesce(segment_counts.retained_customers, 0) as retained_customers,
        coalesce(segment_counts.reactivated_customers, 0) as reactivated_customers,
        coalesce(segment_counts.churned_customers, 0) as churned_customers,
        coalesce(segment_counts.purchasing_customers, 0) as purchasing_customers,
        coalesce(segment_counts.customers_to_date, 0) as customers_to_date,
        coalesce(segment_counts.repeat_customers_to_date, 0) as repeat_customers_to_date,
        coalesce(segment_counts.gap_days, 0) as gap_days,
        coalesce(segment_counts.gaps, 0) as gaps,
        coalesce(segment_counts.orders, 0) as orders,
        coalesce(segment_counts.revenue, 0) as revenue,
        retention_spend.retention_spend
    from spined
    left join segment_counts
        on spined.segment_type = segment_counts.segment_type
        and spined.segment_value = segment_counts.segment_value
        and spined.month = segment_counts.month
    left join retention_spend
        on spined.segment_type = retention_spend.segment_type
        and spined.segment_value = retention_spend.segment_value
        and spined.month = retention_spend.month

)

select * from counts
