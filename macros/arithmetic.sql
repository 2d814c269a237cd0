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
    amount x (USD per unit of its currency) / (USD per unit of the reporting currency).
    The cross rate is fixed to 10 decimals first, so the product and the rounding are exact
    decimal arithmetic on every engine (the quotient of two decimals is a double on DuckDB, which
    rounded some half cents down). The types are chosen for the engines' decimal rules: Spark
    keeps every digit of a product of at most 38 digits (16 + 20 + 1; wider ones it rounds to 6
    decimals), and DuckDB multiplies in 128 bits when an operand is wider than 18 digits (two
    64-bit operands overflow). Amounts must be below 10^12. Null when either rate is missing.
-#}
{% macro convert_to_reporting(amount, rate_to_usd, reporting_rate_to_usd) -%}
    round(
        cast({{ amount }} as decimal(16, 4))
        * cast({{ rate_to_usd }} / {{ reporting_rate_to_usd }} as decimal(20, 10)),
        2
    )
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
    reporting currency), each interval cut where either rate changes. A model joins it once on
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
        reporting_fx.rate_to_usd as reporting_rate_to_usd
    from {{ ref('fx_rates') }} as currency_fx
    inner join {{ ref('fx_rates') }} as reporting_fx
        on reporting_fx.currency = {{ reporting_currency() }}
        and currency_fx.valid_from < reporting_fx.valid_to
        and reporting_fx.valid_from < currency_fx.valid_to
{%- endmacro %}
