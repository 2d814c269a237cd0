{#-
    RFM scores (1-5) of every customer with a purchase up to as_of_date.

    Each score is the quintile of the customer's percent rank (0 for the lowest value, 1 for the
    highest): 1 + floor(5 x percent_rank), capped at 5. Customers with the same value share the
    same score (ntile would split ties arbitrarily). Recency ranks days since the last purchase
    descending, so the most recent buyers score 5. The frequency-monetary score is the rounded
    mean of the frequency and monetary scores; seed rfm_segments names the (R, FM) pair.
-#}
with

purchases as (

    select * from {{ ref('int_customers_purchases_aggregated') }}
    where purchase_count > 0

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

rfm_segments as (

    select * from {{ ref('rfm_segments') }}

),

measured as (

    select
        purchases.customer_id,
        {{ dbt.datediff('cast(purchases.last_purchase_at as date)', 'reporting_dates.as_of_date', 'day') }}
            as recency_days,
        purchases.purchase_count as frequency,
        purchases.total_revenue as monetary
    from purchases
    cross join reporting_dates

),

ranked as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        percent_rank() over (order by recency_days desc) as recency_rank,
        percent_rank() over (order by frequency) as frequency_rank,
        percent_rank() over (order by monetary) as monetary_rank
    from measured

),

scored as (

    select
        customer_id,
        recency_days,
        frequency,
        monetary,
        cast(least(5, 1 + floor(5 * recency_rank)) as integer) as recency_score,
        cast(least(5, 1 + floor(5 * frequency_rank)) as integer) as frequency_score,
        cast(least(5, 1 + floor(5 * monetary_rank)) as integer) as monetary_score
    from ranked

),

final as (

    select
        scored.*,
        cast(floor((scored.frequency_score + scored.monetary_score + 1) / 2.0) as integer)
            as frequency_monetary_score,
        rfm_segments.rfm_segment
    from scored
    left join rfm_segments
        on scored.recency_score = rfm_segments.recency_score
        and cast(floor((scored.frequency_score + scored.monetary_score + 1) / 2.0) as integer)
        = rfm_segments.frequency_monetary_score

)

select * from final
