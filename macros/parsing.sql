{#-
    Parsing helpers for the staging layer: raw columns are text, exactly as landed.
    Each macro returns NULL when the text cannot be parsed, never an error, so staging can route
    the row to quarantine with a reason instead of failing the build.
-#}

{#-
    cast() that gives NULL instead of an error. dbt's own safe_cast is a plain cast on DuckDB,
    so the engines that have a real try_cast get it here.
-#}
{% macro try_cast(expr, type) -%}
    {{ return(adapter.dispatch('try_cast', 'retention')(expr, type)) }}
{%- endmacro %}

{% macro default__try_cast(expr, type) -%}
    {{ dbt.safe_cast(expr, type) }}
{%- endmacro %}

{% macro duckdb__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}


{#- Blank or whitespace-only text is missing. -#}
{% macro clean_text(expr) -%}
    nullif(trim({{ expr }}), '')
{%- endmacro %}


{#-
    ISO-8601 text to a UTC timestamp (without time zone). An offset (+02:00, Z) is honoured;
    naive text is read as UTC. Unparseable or impossible values (2024-02-30) give NULL.
-#}
{% macro parse_timestamp_utc(expr) -%}
    {{ return(adapter.dispatch('parse_timestamp_utc', 'retention')(expr)) }}
{%- endmacro %}

{% macro default__parse_timestamp_utc(expr) -%}
    cast({{ retention.try_cast(clean_text(expr), api.Column.translate_type('timestamp')) }} as timestamp)
{%- endmacro %}

{% macro duckdb__parse_timestamp_utc(expr) -%}
    {#- the profile sets TimeZone=UTC, so naive text is UTC and the offset is applied -#}
    (try_cast({{ clean_text(expr) }} as timestamptz) at time zone 'UTC')
{%- endmacro %}


{#- Decimal text ("12.50", " 7 ") to a number; anything else gives NULL. -#}
{% macro parse_decimal(expr, precision=18, scale=4) -%}
    {{ return(adapter.dispatch('parse_decimal', 'retention')(expr, precision, scale)) }}
{%- endmacro %}

{% macro default__parse_decimal(expr, precision, scale) -%}
    {{ retention.try_cast(clean_text(expr), 'decimal(' ~ precision ~ ', ' ~ scale ~ ')') }}
{%- endmacro %}

{% macro duckdb__parse_decimal(expr, precision, scale) -%}
    {#-
        DuckDB parses text into a decimal of up to 18 digits (a 64-bit integer) some thirty
        times faster than into a wider one (128-bit): try the narrow type first, and the wide
        one only for the text the narrow one rejects.
    -#}
    {%- if precision > 18 -%}
        coalesce(
            cast({{ retention.try_cast(clean_text(expr), 'decimal(18, ' ~ scale ~ ')') }}
                as decimal({{ precision }}, {{ scale }})),
            {{ retention.try_cast(clean_text(expr), 'decimal(' ~ precision ~ ', ' ~ scale ~ ')') }}
        )
    {%- else -%}
        {{ retention.try_cast(clean_text(expr), 'decimal(' ~ precision ~ ', ' ~ scale ~ ')') }}
    {%- endif -%}
{%- endmacro %}


{#- Whole-number text to an integer; "7.5" or "x" give NULL. -#}
{% macro parse_integer(expr) -%}
    {{ retention.try_cast(clean_text(expr), dbt.type_int()) }}
{%- endmacro %}


{#- Text to a date: "2024-03-01" or "2024-03" (first of the month). -#}
{% macro parse_month(expr) -%}
    cast({{ dbt.date_trunc('month', parse_timestamp_utc(
        "case when length(trim(" ~ expr ~ ")) = 7 then trim(" ~ expr ~ ") || '-01' else " ~ expr ~ " end"
    )) }} as date)
{%- endmacro %}
