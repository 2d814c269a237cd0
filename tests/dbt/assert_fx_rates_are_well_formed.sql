-- Every row of seed fx_rates can convert an amount: an upper-case ISO-4217 code (orders' codes
-- are trimmed and upper-cased before the join, the seed's are taken as written: a rate for
-- "jpy" or " GBP" matches no order, and every order in that currency would be quarantined as
-- unknown_currency, every test passing), both dates, a validity that is not empty, and a rate
-- above 0. Attached to the seed, so dbt build stops before any model converts money; each row
-- names what to correct in seeds/fx_rates.csv.
with

fx_rates as (

    select * from {{ ref('fx_rates') }}

),

problems as (

    select
        currency,
        valid_from,
        rate_to_usd,
        case
            when currency is null or not {{ matches_pattern('currency', '^[A-Z]{3}$') }}
                then 'currency must be a three-letter upper-case code (ISO 4217)'
            when valid_from is null or valid_to is null
                then 'valid_from and valid_to must be dates (YYYY-MM-DD)'
            when valid_to <= valid_from then 'valid_to must be after valid_from'
            when rate_to_usd is null or rate_to_usd <= 0 then 'rate_to_usd must be above 0'
        end as problem
    from fx_rates

)

select * from problems
where problem is not null
