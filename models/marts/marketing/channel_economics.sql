{#-
    Acquisition and retention economics per acquisition channel and month:
    - acquisition_cost_per_customer (CAC) = acquisition spend / new customers of the channel;
    - retention_cost_per_active_customer = retention spend / customers active at month end;
    - clv_to_cac_ratio = the channel's historical CLV (clv_summary) / the month's CAC.
    Months without spend data have null costs; months run from the first month with data to
    as_of_date for every channel that has customers or spend.
-#}
with

retention_monthly as (

    select * from {{ ref('retention_monthly') }}
    where segment_type = 'acquisition_channel'

),

marketing_spend as (

    select * from {{ ref('stg_shop__marketing_spend') }}

),

clv_summary as (

    select * from {{ ref('clv_summary') }}
    where segment_type = 'acquisition_channel'

),

calendar_months as (

    select * from {{ ref('int_calendar_months') }}

),

spend as (

    select
        spend_month as month,
        channel_group as acquisition_channel,
        -- null, not 0.00, where the month has no row of the type: no spend data (a CAC of 0.00
        -- would say acquisition was free), as in retention_monthly
        sum(case when spend_type = 'acquisition' then amount end) as acquisition_spend,
        sum(case when spend_type = 'retention' then amount end) as retention_spend
    from marketing_spend
    group by spend_month, channel_group

),

channels as (

    select segment_value as acquisition_channel from retention_monthly
    union
    select acquisition_channel from spend

),

spined as (

    select
        calendar_months.month,
        channels.acquisition_channel
    from calendar_months
    cross join channels

),

joined as (

    select
        spined.month,
        spined.acquisition_channel,
        coalesce(retention_monthly.new_customers, 0) as new_customers,
        coalesce(retention_monthly.customers_end, 0) as active_customers,
        coalesce(retention_monthly.revenue, 0) as revenue,
        spend.acquisition_spend,
        spend.retention_spend,
        clv_summary.historical_clv
    from spined
    left join retention_monthly
        on spined.month = retention_monthly.month
        and spined.acquisition_channel = retention_monthly.segment_value
    left join spend
        on spined.month = spend.month
        and spined.acquisition_channel = spend.acquisition_channel
    left join clv_summary
        on spined.acquisition_channel = clv_summary.segment_value

),

final as (

    select
        month,
        acquisition_channel,
        cast(new_customers as integer) as new_customers,
        cast(active_customers as integer) as active_customers,
        cast(revenue as decimal(18, 2)) as revenue,
        cast(acquisition_spend as decimal(18, 2)) as acquisition_spend,
        cast(retention_spend as decimal(18, 2)) as retention_spend,
        {{ divide_money('acquisition_spend', 'nullif(new_customers, 0)') }}
            as acquisition_cost_per_customer,
        {{ divide_money('retention_spend', 'nullif(active_customers, 0)') }}
            as retention_cost_per_active_customer,
        cast(historical_clv as decimal(18, 2)) as historical_clv,
        cast(
            case
                when new_customers > 0 and acquisition_spend > 0
                    then {{ ratio('historical_clv * new_customers', 'acquisition_spend') }}
            end
            as {{ type_double() }}
        ) as clv_to_cac_ratio
    from joined

)

select * from final
