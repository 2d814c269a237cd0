-- var reporting_currency has rates in seed fx_rates. Without them every amount would be
-- quarantined as unknown_currency and the marts built empty, with every other test passing.
-- Attached to the seed, so dbt build stops before any model converts money.
select
    {{ reporting_currency() }} as reporting_currency,
    'has no rates in seed fx_rates: add them, or set var reporting_currency to a currency there'
        as problem
where not exists (
        select 1
        from {{ ref('fx_rates') }} as fx_rates
        where fx_rates.currency = {{ reporting_currency() }}
    )
