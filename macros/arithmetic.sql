{#-
    Money rounded to the cent the same way on every engine.

    DuckDB divides decimals in double precision, PostgreSQL and Spark in decimal arithmetic: a
    half-cent such as 32.175 is 32.17499999... as a double, so a plain cast gave 32.17 on DuckDB
    and 32.18 elsewhere. The value is first rounded to 6 decimals (which removes the double's
    error for amounts below 10^9), then half away from zero to the cent (decimal casts round
    that way on all three engines).
-#}
{% macro round_money(expr, precision=18, scale=2) -%}
    {{ return(adapter.dispatch('round_money', 'retention')(expr, precision, scale)) }}
{%- endmacro %}

{% macro default__round_money(expr, precision, scale) -%}
    cast(cast({{ expr }} as decimal(38, 6)) as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{#-
    DuckDB converts a double to a 38-digit decimal about 40 times slower than to an 18-digit one
    (1.2 against 0.03 s for a million values: avg_order_value was a sixth of `customers`). Below
    10^11 an 18-digit decimal holds the 6 decimals, so the result is the same; larger values
    take the 38-digit path.
-#}
{% macro duckdb__round_money(expr, precision, scale) -%}
    case
        when abs({{ expr }}) < 100000000000
            then cast(cast({{ expr }} as decimal(18, 6)) as decimal({{ precision }}, {{ scale }}))
        else cast(cast({{ expr }} as decimal(38, 6)) as decimal({{ precision }}, {{ scale }}))
    end
{%- endmacro %}


{#- numerator / denominator as money (see round_money). -#}
{% macro divide_money(numerator, denominator, precision=18, scale=2) -%}
    {{ round_money('(' ~ numerator ~ ') / (' ~ denominator ~ ')', precision, scale) }}
{%- endmacro %}


{#-
    An amount converted to the reporting currency and rounded half away from zero to the cent:
    amount x (USD per unit of its currency) / (USD per unit of the reporting currency), exactly.
    The rates come as whole numbers of 10^-8 (rate_units: seed fx_rates is decimal(18, 8)),
    made once per rate in reporting_cross_rates(). In whole numbers, the amount in
    ten-thousandths (it has 4 decimals) times the rate, over the reporting rate times 100, is
    the amount in cents; the whole quotient of twice that plus one, over two, rounds it.
    A cross rate cut to 10 decimals first (before) gave 51.31 for an exact 51.315 (90.19 AUD in
    EUR), a cent low for about one amount in a hundred outside USD. The whole numbers stay below
    10^35 (amounts below 10^12: the callers' guard; rates below 10^10), which decimal(38, 0)
    and DuckDB's hugeint hold without rounding. Null when either rate is missing.
-#}
{% macro convert_to_reporting(amount, rate_units, reporting_rate_units) -%}
    {{ return(adapter.dispatch('convert_to_reporting', 'retention')(
        amount, rate_units, reporting_rate_units
    )) }}
{%- endmacro %}

{% macro default__convert_to_reporting(amount, rate_units, reporting_rate_units) -%}
    {%- set cents -%}
        abs(cast(cast({{ amount }} as decimal(38, 4)) * 10000 as decimal(38, 0))) * ({{ rate_units }})
    {%- endset -%}
    {%- set per_cent = '(' ~ reporting_rate_units ~ ') * 100' -%}
    case when ({{ amount }}) < 0 then -0.01 else 0.01 end * cast({{ whole_quotient(
        '2 * ' ~ cents ~ ' + ' ~ per_cent, '2 * ' ~ per_cent
    ) }} as decimal(38, 0))
{%- endmacro %}

{#-
    DuckDB: an amount below 10^10 is made a whole number in 64 bits (a 128-bit decimal times
    10^4 took as long as the rest of the conversion); the product and the division are in
    128 bits (two decimals of up to 18 digits are multiplied in 64 bits, which overflows).
-#}
{% macro duckdb__convert_to_reporting(amount, rate_units, reporting_rate_units) -%}
    case when ({{ amount }}) < 0 then -0.01 else 0.01 end * cast((
        2 * case
            when abs({{ amount }}) < 10000000000
                then cast(cast(abs({{ amount }}) as decimal(18, 4)) * 10000 as bigint)::hugeint
            else cast(cast(abs({{ amount }}) as decimal(38, 4)) * 10000 as hugeint)
        end * ({{ rate_units }})
        + ({{ reporting_rate_units }}) * 100
    ) // (2 * ({{ reporting_rate_units }}) * 100) as decimal(38, 0))
{%- endmacro %}


{#- A rate of seed fx_rates (decimal(18, 8)) as a whole number of 10^-8: exact. -#}
{% macro rate_units(rate) -%}
    cast(cast({{ rate }} as decimal(38, 8)) * 100000000 as {{ type_whole_number() }})
{%- endmacro %}


{#-
    The whole part of numerator / denominator, whole decimals with numerator >= 0 and
    denominator > 0, computed exactly (a quotient of decimals is rounded to 6 decimals on Spark).
-#}
{% macro whole_quotient(numerator, denominator) -%}
    {{ return(adapter.dispatch('whole_quotient', 'retention')(numerator, denominator)) }}
{%- endmacro %}

{% macro default__whole_quotient(numerator, denominator) -%}
    div({{ numerator }}, {{ denominator }})
{%- endmacro %}

{#- the remainder of two decimals is exact on Spark, and so is the quotient of a multiple -#}
{% macro spark__whole_quotient(numerator, denominator) -%}
    ((({{ numerator }}) - ({{ numerator }}) % ({{ denominator }})) / ({{ denominator }}))
{%- endmacro %}


{#-
    numerator / denominator as a double-precision rate, the same on every engine: no integer
    division (PostgreSQL), no decimal quotient rounded to 6 places (Spark). The caller guards
    against a zero denominator.
-#}
{% macro ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / ({{ denominator }})
{%- endmacro %}


{#-
    A decimal stored as decimal(precision, scale), null when it does not fit (the caller has
    already rejected such a value). DuckDB stores a decimal wider than 18 digits in 128 bits;
    scanning, summing and exporting such a column is several times slower than a 64-bit one.
-#}
{% macro narrow_decimal(expr, precision, scale) -%}
    case
        when abs({{ expr }}) < {{ 10 ** (precision - scale) }}
            then cast({{ expr }} as decimal({{ precision }}, {{ scale }}))
    end
{%- endmacro %}


{#-
    The rates an amount is converted with, per currency and validity interval of seed fx_rates:
    rate_to_usd (USD per unit of the currency) and reporting_rate_to_usd (USD per unit of the
    reporting currency), and both as rate_units and reporting_rate_units (convert_to_reporting),
    each interval cut where either rate changes. A model joins it once on
    currency and date: two joins, the second on a date range alone, made DuckDB sort every order.
-#}
{% macro reporting_cross_rates() -%}
    select
        currency_fx.currency,
        case
            when currency_fx.valid_from > reporting_fx.valid_from then currency_fx.valid_from
            else reporting_fx.valid_from
        end as valid_from,
        case
            when currency_fx.valid_to < reporting_fx.valid_to then currency_fx.valid_to
            else reporting_fx.valid_to
        end as valid_to,
        currency_fx.rate_to_usd,
        reporting_fx.rate_to_usd as reporting_rate_to_usd,
        {{ rate_units('currency_fx.rate_to_usd') }} as rate_units,
        {{ rate_units('reporting_fx.rate_to_usd') }} as reporting_rate_units
    from {{ ref('fx_rates') }} as currency_fx
    inner join {{ ref('fx_rates') }} as reporting_fx
        on reporting_fx.currency = {{ reporting_currency() }}
        and currency_fx.valid_from < reporting_fx.valid_to
        and reporting_fx.valid_from < currency_fx.valid_to
{%- endmacro %}
