-- One row per day, 2015-01-01 .. 2039-12-31: the time spine MetricFlow needs for metrics.
{{ config(materialized='table') }}

with

days as (

    {{ dbt.generate_series(9131) }}

),

final as (

    select
        cast(
            {{ dbt.dateadd('day', 'days.generated_number - 1', "cast('2015-01-01' as date)") }}
            as date
        ) as date_day
    from days

)

select * from final
