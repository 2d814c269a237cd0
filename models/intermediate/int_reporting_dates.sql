{#-
    The reporting parameters as one row, so every model reads the same values and unit tests can
    give them as an input. Vars are validated when dbt compiles (macros/as_of_date.sql).
-#}
{{ config(materialized='table') }}

{#- read by the CLV models (Python): checked here too, so that a bad value stops the build
    when it compiles, before any mart is replaced -#}
{%- do int_var('clv_horizon_days', 1) -%}
{%- do int_var('clv_min_repeat_customers', 1) -%}
{%- do rate_var('clv_annual_discount_rate') -%}

{%- set churn_days = int_var('churn_inactivity_days') | int -%}
{%- if churn_days < 31 -%}
    {{ exceptions.raise_compiler_error(
        "var churn_inactivity_days must be at least 31 (a customer who bought this month must "
        ~ "still be active at its end), got " ~ churn_days) }}
{%- endif -%}

with

parameters as (

    select
        {{ as_of_date() }} as as_of_date,
        {{ churn_days }} as churn_inactivity_days,
        {{ churn_days // 2 }} as at_risk_inactive_days,
        {{ int_var('winback_min_inactive_days') }} as winback_min_inactive_days,
        {{ reporting_currency() }} as reporting_currency

),

final as (

    select
        as_of_date,
        cast({{ dbt.date_trunc('month', 'as_of_date') }} as date) as as_of_month,
        churn_inactivity_days,
        at_risk_inactive_days,
        winback_min_inactive_days,
        reporting_currency
    from parameters

)

select * from final
