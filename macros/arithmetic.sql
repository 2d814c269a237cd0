{#-
    Money rounded to the cent the same way on every engine.

    DuckDB divides decimals in double precision, PostgreSQL and Spark in decimal arithmetic: a
    half-cent such as 32.175 is 32.17499999... as a double, so a plain cast gave 32.17 on DuckDB
    and 32.18 elsewhere. The value is first rounded to 6 decimals (which removes the double's
    error for amounts below 10^9), then half away from zero to the cent (decimal casts round
    that way on all three engines).
-#}
{% macro round_money(expr, precision=18, scale=2) -%}
    cast(cast({{ expr }} as decimal(38, 6)) as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}


{#- numerator / denominator as money (see round_money). -#}
{% macro divide_money(numerator, denominator, precision=18, scale=2) -%}
    {{ round_money('(' ~ numerator ~ ') / (' ~ denominator ~ ')', precision, scale) }}
{%- endmacro %}


{#-
    An amount converted to the reporting currency and rounded to the cent:
    amount x (USD per unit of its currency) / (USD per unit of the reporting currency).
    Both rates come from seed fx_rates; null when either is missing.
-#}
{% macro convert_to_reporting(amount, rate_to_usd, reporting_rate_to_usd) -%}
    {{ divide_money(
        'cast(' ~ amount ~ ' as decimal(16, 4)) * ' ~ rate_to_usd,
        reporting_rate_to_usd,
        precision=38,
    ) }}
{%- endmacro %}


{#-
    numerator / denominator as a double-precision rate, the same on every engine: no integer
    division (PostgreSQL), no decimal quotient rounded to 6 places (Spark). The caller guards
    against a zero denominator.
-#}
{% macro ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / ({{ denominator }})
{%- endmacro %}
