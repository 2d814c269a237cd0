-- The core marts (customers, customer_cohorts, retention_monthly) computed from the raw tables
-- in plain DuckDB SQL, without dbt: the yardstick `make bench` compares the dbt build with.
-- Same rules as the dbt models (typing, reject reasons, latest version wins, exact duplicates,
-- currency conversion, purchase = completed order, churn window, RFM quintiles), written the
-- way one would by hand for DuckDB alone; predictive CLV columns are left out.
-- benchmarks/bench.py runs it with the build warehouse attached read-only as `wh` and the
-- seeds folder as {seeds}; the marts land in the `plain` schema of a scratch database.
set TimeZone = 'UTC';
set preserve_insertion_order = false;
create schema if not exists plain;

create or replace temp table fx as
select * from read_csv('{seeds}/fx_rates.csv', header = true,
    columns = {'currency': 'varchar', 'valid_from': 'date', 'valid_to': 'date', 'rate_to_usd': 'decimal(18,8)'});
create or replace temp table channel_groups as
select * from read_csv('{seeds}/channel_groups.csv', header = true, all_varchar = true);
create or replace temp table country_regions as
select * from read_csv('{seeds}/country_regions.csv', header = true, all_varchar = true);
create or replace temp table rfm_segments as
select * from read_csv('{seeds}/rfm_segments.csv', header = true,
    columns = {'recency_score': 'integer', 'frequency_monetary_score': 'integer', 'rfm_segment': 'varchar'});

-- customers: typed, rejected rows dropped, exact copies dropped, latest version wins
create or replace temp table customers as
with typed as (
    select
        nullif(trim(customer_id), '') as customer_id,
        lower(nullif(trim(email), '')) as email,
        try_cast(nullif(trim(signup_at), '') as timestamptz) at time zone 'UTC' as signup_at,
        upper(nullif(trim(country), '')) as country_code,
        nullif(trim(acquisition_channel), '') as channel_raw,
        try_cast(nullif(trim(updated_at), '') as timestamptz) at time zone 'UTC' as updated_at,
        nullif(trim(signup_at), '') is not null as has_signup_text,
        nullif(trim(updated_at), '') is not null as has_updated_text,
        _load_issue, _loaded_at, _source_file, _source_row
    from wh.raw.customers
),
valid as (
    select * from typed
    where _load_issue is null and customer_id is not null
        and not (has_signup_text and signup_at is null)
        and not (has_updated_text and updated_at is null)
        and coalesce(signup_at <= _loaded_at + interval 24 hour, true)
        and coalesce(updated_at <= _loaded_at + interval 24 hour, true)
)
select
    valid.customer_id, email, signup_at, valid.country_code,
    coalesce(country_regions.region, 'Unknown') as region,
    coalesce(channel_groups.channel_group, 'other') as acquisition_channel
from valid
left join channel_groups on lower(valid.channel_raw) = channel_groups.channel_raw
left join country_regions on valid.country_code = country_regions.country_code
qualify row_number() over (
    partition by valid.customer_id
    order by coalesce(updated_at, signup_at, _loaded_at) desc, _loaded_at desc,
        _source_file desc, _source_row desc
) = 1;

-- orders: the same, converted to USD; only orders of known customers
create or replace temp table orders as
with typed as (
    select
        nullif(trim(order_id), '') as order_id,
        nullif(trim(customer_id), '') as customer_id,
        try_cast(nullif(trim(ordered_at), '') as timestamptz) at time zone 'UTC' as ordered_at,
        lower(nullif(trim(status), '')) as status,
        -- a decimal(18) parses ~30x faster than a decimal(38); the wide one only as fallback
        coalesce(
            try_cast(nullif(trim(amount), '') as decimal(18, 4))::decimal(38, 4),
            try_cast(nullif(trim(amount), '') as decimal(38, 4))
        ) as amount,
        upper(nullif(trim(currency), '')) as currency,
        try_cast(nullif(trim(updated_at), '') as timestamptz) at time zone 'UTC' as updated_at,
        nullif(trim(updated_at), '') is not null as has_updated_text,
        _load_issue, _loaded_at, _source_file, _source_row,
        -- exact copies of a landed row count once
        row_number() over (
            partition by order_id, customer_id, ordered_at, status, amount, currency, updated_at,
                _extra
            order by _loaded_at, _source_file, _source_row
        ) as copy_number
    from wh.raw.orders
),
converted as (
    select
        typed.*,
        round(cast(amount as decimal(38, 12)) * fx.rate_to_usd, 2) as amount_usd
    from typed
    left join fx
        on typed.currency = fx.currency
        and typed.ordered_at >= fx.valid_from and typed.ordered_at < fx.valid_to
),
valid as (
    select converted.*
    from converted
    semi join customers on converted.customer_id = customers.customer_id
    where _load_issue is null and order_id is not null and ordered_at is not null
        and not (has_updated_text and updated_at is null)
        and ordered_at <= _loaded_at + interval 24 hour
        and coalesce(updated_at <= _loaded_at + interval 24 hour, true)
        and status in ('completed', 'cancelled', 'refunded', 'pending')
        and amount >= 0 and amount < 1000000000000
        and amount_usd is not null and amount_usd <= 1000000
        and copy_number = 1
)
select order_id, customer_id, ordered_at, status, amount_usd as amount
from valid
qualify row_number() over (
    partition by order_id
    order by coalesce(updated_at, ordered_at) desc, _loaded_at desc, _source_file desc,
        _source_row desc
) = 1;

create or replace temp table params as
select
    as_of_date,
    date_trunc('month', as_of_date)::date as as_of_month,
    180 as churn_days,
    90 as at_risk_days
from (select max(ordered_at)::date as as_of_date from orders);

create or replace temp table purchase_days as
select
    customer_id,
    ordered_at::date as purchase_date,
    date_trunc('month', ordered_at)::date as purchase_month,
    count(*) as purchases,
    sum(amount) as revenue
from orders, params
where status = 'completed' and ordered_at::date <= as_of_date
group by all;

create or replace temp table months as
with bounds as (
    select date_trunc('month', min(purchase_date))::date as first_month from purchase_days
)
select
    month::date as month,
    case when month = as_of_month then as_of_date
        else (month + interval 1 month - interval 1 day)::date end as month_end
from bounds, params,
    generate_series(first_month, as_of_month, interval 1 month) as months(month);

-- customer x month activity
create or replace temp table customer_months as
with monthly as (
    select customer_id, purchase_month as month, sum(purchases) as purchases,
        sum(revenue) as revenue, max(purchase_date) as last_in_month
    from purchase_days group by all
),
cohorts as (
    select customer_id, min(month) as cohort_month from monthly group by all
),
spined as (
    select
        cohorts.customer_id, cohorts.cohort_month, months.month, months.month_end,
        coalesce(monthly.purchases, 0) as purchases,
        coalesce(monthly.revenue, 0) as revenue,
        max(monthly.last_in_month) over w as last_purchase_date,
        max(monthly.last_in_month) over (
            partition by cohorts.customer_id order by months.month
            rows between unbounded preceding and 1 preceding
        ) as last_before,
        sum(coalesce(monthly.purchases, 0)) over w as cumulative_purchases
    from cohorts
    join months on months.month >= cohorts.cohort_month
    left join monthly on monthly.customer_id = cohorts.customer_id and monthly.month = months.month
    window w as (partition by cohorts.customer_id order by months.month
        rows between unbounded preceding and current row)
)
select
    spined.*,
    customers.acquisition_channel,
    customers.region,
    datediff('month', cohort_month, month) as period_number,
    (month_end - last_purchase_date) < churn_days as is_active_at_end,
    coalesce((month - 1 - last_before) < churn_days, false) as is_active_at_start,
    month = cohort_month as is_new,
    (month_end - last_purchase_date) as days_since_last_purchase
from spined
join customers using (customer_id), params;

create or replace table plain.retention_monthly as
with cells as (
    select
        month, acquisition_channel, region,
        count(*) filter (is_active_at_start) as customers_start,
        count(*) filter (is_new) as new_customers,
        count(*) filter (is_active_at_end) as customers_end,
        count(*) filter (is_active_at_start and is_active_at_end) as retained_customers,
        count(*) filter (purchases > 0 and not is_active_at_start and not is_new)
            as reactivated_customers,
        count(*) filter (is_active_at_start and not is_active_at_end) as churned_customers,
        sum(revenue) as revenue
    from customer_months group by all
),
segmented as (
    select month, 'all' as segment_type, 'all' as segment_value, * exclude (month, acquisition_channel, region) from cells
    union all
    select month, 'acquisition_channel', acquisition_channel, * exclude (month, acquisition_channel, region) from cells
    union all
    select month, 'region', region, * exclude (month, acquisition_channel, region) from cells
),
counts as (
    select month, segment_type, segment_value,
        sum(customers_start) as customers_start, sum(new_customers) as new_customers,
        sum(customers_end) as customers_end, sum(retained_customers) as retained_customers,
        sum(reactivated_customers) as reactivated_customers,
        sum(churned_customers) as churned_customers, sum(revenue) as revenue
    from segmented group by all
),
spine as (
    select months.month, s.segment_type, s.segment_value
    from months, (select distinct segment_type, segment_value from counts) as s
)
select
    spine.month, spine.segment_type, spine.segment_value,
    coalesce(customers_start, 0)::integer as customers_start,
    coalesce(new_customers, 0)::integer as new_customers,
    coalesce(customers_end, 0)::integer as customers_end,
    coalesce(retained_customers, 0)::integer as retained_customers,
    coalesce(reactivated_customers, 0)::integer as reactivated_customers,
    coalesce(churned_customers, 0)::integer as churned_customers,
    case when customers_start > 0 then (customers_end - new_customers) / customers_start end
        as customer_retention_rate,
    case when customers_start > 0 then retained_customers / customers_start end
        as retained_from_start_rate,
    case when customers_start > 0 then churned_customers / customers_start end as churn_rate,
    coalesce(revenue, 0)::decimal(18, 2) as revenue
from spine left join counts using (month, segment_type, segment_value);

create or replace table plain.customer_cohorts as
with cells as (
    select cohort_month, period_number, acquisition_channel, region, count(*) as customers,
        count(*) filter (purchases > 0) as active, sum(revenue) as revenue
    from customer_months group by all
),
segmented as (
    select 'all' as segment_type, 'all' as segment_value, * exclude (acquisition_channel, region) from cells
    union all
    select 'acquisition_channel', acquisition_channel, * exclude (acquisition_channel, region) from cells
    union all
    select 'region', region, * exclude (acquisition_channel, region) from cells
),
periods as (
    select segment_type, segment_value, cohort_month, period_number,
        sum(customers) as cohort_size, sum(active) as active_customers, sum(revenue) as revenue
    from segmented group by all
)
select
    cohort_month, period_number, segment_type, segment_value,
    cohort_size::integer as cohort_size,
    active_customers::integer as active_customers,
    active_customers / cohort_size as retention_rate,
    revenue::decimal(18, 2) as revenue,
    (sum(revenue) over (partition by segment_type, segment_value, cohort_month
        order by period_number) / cohort_size)::decimal(18, 6)::decimal(18, 2)
        -- (the quotient is a double: through 6 decimals a half cent rounds away from zero, as
        -- the project's round_money does, instead of to the double's nearest cent)
        as cumulative_revenue_per_customer
from periods;

create or replace table plain.customers as
with aggregated as (
    select
        customer_id,
        min(ordered_at) filter (status = 'completed') as first_purchase_at,
        max(ordered_at) filter (status = 'completed') as last_purchase_at,
        count(*) filter (status = 'completed') as purchase_count,
        coalesce(sum(amount) filter (status = 'completed'), 0) as total_revenue,
        count(*) as order_count
    from orders, params
    where ordered_at::date <= as_of_date
    group by all
),
rfm as (
    select
        customer_id,
        least(5, 1 + floor(5 * percent_rank() over (order by as_of_date - last_purchase_at::date desc)))::integer as recency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by purchase_count)))::integer as frequency_score,
        least(5, 1 + floor(5 * percent_rank() over (order by total_revenue)))::integer as monetary_score
    from aggregated, params
    where purchase_count > 0
),
current_month as (
    select customer_id,
        case
            when is_new then 'new'
            when purchases > 0 and not is_active_at_start then 'reactivated'
            when not is_active_at_end then 'churned'
            when days_since_last_purchase >= at_risk_days then 'at_risk'
            else 'active'
        end as lifecycle_stage
    from customer_months, params
    where month = as_of_month
)
select
    customers.customer_id,
    customers.acquisition_channel,
    customers.region,
    date_trunc('month', aggregated.first_purchase_at)::date as cohort_month,
    coalesce(aggregated.purchase_count, 0)::integer as purchase_count,
    coalesce(aggregated.total_revenue, 0)::decimal(18, 2) as total_revenue,
    (as_of_date - aggregated.last_purchase_at::date)::integer as days_since_last_purchase,
    current_month.lifecycle_stage,
    rfm.recency_score,
    rfm.frequency_score,
    rfm.monetary_score,
    rfm_segments.rfm_segment,
    (as_of_date - aggregated.last_purchase_at::date) >= churn_days as is_churned
from customers
cross join params
left join aggregated using (customer_id)
left join rfm using (customer_id)
left join current_month using (customer_id)
left join rfm_segments
    on rfm.recency_score = rfm_segments.recency_score
    and floor((rfm.frequency_score + rfm.monetary_score + 1) / 2.0) = rfm_segments.frequency_monetary_score
where customers.signup_at is null or customers.signup_at::date <= as_of_date
    or aggregated.customer_id is not null;
