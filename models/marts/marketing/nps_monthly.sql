{#-
    Net Promoter Score per month and segment: NPS = % promoters (9-10) - % detractors (0-6),
    from -100 to 100; null in months without answers. Answers after as_of_date are ignored.
-#}
with

responses as (

    select * from {{ ref('stg_shop__nps_responses') }}

),

customers as (

    select * from {{ ref('int_customers_segmented') }}

),

segments as (

    select * from {{ ref('int_segments') }}

),

calendar_months as (

    select * from {{ ref('int_calendar_months') }}

),

reporting_dates as (

    select * from {{ ref('int_reporting_dates') }}

),

cells as (

    select
        cast({{ dbt.date_trunc('month', 'responses.responded_at') }} as date) as month,
        customers.acquisition_channel,
        customers.region,
        count(*) as responses,
        sum(case when responses.score >= 9 then 1 else 0 end) as promoters,
        sum(case when responses.score between 7 and 8 then 1 else 0 end) as passives,
        sum(case when responses.score <= 6 then 1 else 0 end) as detractors,
        sum(responses.score) as score_total
    from responses
    inner join customers
        on responses.customer_id = customers.customer_id
    cross join reporting_dates
    where cast(responses.responded_at as date) <= reporting_dates.as_of_date
    group by
        cast({{ dbt.date_trunc('month', 'responses.responded_at') }} as date),
        customers.acquisition_channel,
        customers.region

),

segment_cells as (

    {{ expand_segments('cells', [
        'month', 'responses', 'promoters', 'passives', 'detractors', 'score_total',
    ]) }}

),

segment_counts as (

    select
        segment_type,
        segment_value,
        month,
        sum(responses) as responses,
        sum(promoters) as promoters,
        sum(passives) as passives,
        sum(detractors) as detractors,
        sum(score_total) as score_total
    from segment_cells
    group by segment_type, segment_value, month

),

spined as (

    select
        calendar_months.month,
        segments.segment_type,
        segments.segment_value
    from calendar_months
    cross join segments

),

final as (

    select
        spined.month,
        spined.segment_type,
        spined.segment_value,
        cast(coalesce(segment_counts.responses, 0) as integer) as responses,
        cast(coalesce(segment_counts.promoters, 0) as integer) as promoters,
        cast(coalesce(segment_counts.passives, 0) as integer) as passives,
        cast(coalesce(segment_counts.detractors, 0) as integer) as detractors,
        cast(
            case
                when segment_counts.responses > 0
                    then {{ ratio('segment_counts.score_total', 'segment_counts.responses') }}
            end
            as {{ type_double() }}
        ) as avg_score,
        cast(
            case
                when segment_counts.responses > 0
                    then 100 * {{ ratio(
                        'segment_counts.promoters - segment_counts.detractors',
                        'segment_counts.responses',
                    ) }}
            end
            as {{ type_double() }}
        ) as nps
    from spined
    left join segment_counts
        on spined.segment_type = segment_counts.segment_type
        and spined.segment_value = segment_counts.segment_value
        and spined.month = segment_counts.month

)

select * from final
