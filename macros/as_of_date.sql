{#-
    The reporting date every mart is computed as of (a SQL expression of type date).

    var('as_of_date') when set (validated as YYYY-MM-DD, so it is never interpolated as free
    text), otherwise the date of the latest valid order. Orders and purchases after this date
    are ignored, so results for a past date are reproducible.
-#}
{% macro as_of_date() -%}
    {%- set value = var('as_of_date', '') | string | trim -%}
    {%- if value in ('', 'none', 'None') -%}
        (select cast(max(ordered_at) as date) from {{ ref('stg_shop__orders') }})
    {%- else -%}
        {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', value) -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date must be a date written YYYY-MM-DD, got '" ~ value ~ "'") }}
        {%- endif -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}


{#- An integer var, checked: a non-integer is a clear compile error, not SQL text. -#}
{% macro int_var(name) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^\d+$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a non-negative whole number, got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}


{#- The reporting currency var, checked to be a three-letter ISO-4217 code. -#}
{% macro reporting_currency() -%}
    {%- set value = var('reporting_currency') | string | trim | upper -%}
    {%- if not modules.re.match('^[A-Z]{3}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var reporting_currency must be an ISO-4217 code such as USD, got '" ~ value ~ "'") }}
    {%- endif -%}
    '{{ value }}'
{%- endmacro %}
