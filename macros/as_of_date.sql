{#-
    The reporting date every mart is computed as of (a SQL expression of type date).

    var('as_of_date') when set (validated as YYYY-MM-DD, so it is never interpolated as free
    text), otherwise the date of the latest valid order. Orders and purchases after this date
    are ignored, so results for a past date are reproducible. A set date must lie between the
    first valid order and today (UTC, plus future_tolerance_hours): a date in the future would
    give every customer ages and inactivity that have not happened, and the incremental models
    would refuse every later, earlier date until a full refresh; before the first order there
    is nothing to report.
-#}
{% macro as_of_date() -%}
    {#- outside the branches: dbt records the dependency whichever the parse takes -#}
    {%- set orders = ref('stg_shop__orders') -%}
    {%- set value = var('as_of_date', '') | string | trim -%}
    {%- if value in ('', 'none', 'None') -%}
        (select cast(max(ordered_at) as date) from {{ orders }})
    {%- else -%}
        {%- if not modules.re.match('^\d{4}-\d{2}-\d{2}$', value) -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date must be a date written YYYY-MM-DD, got '" ~ value ~ "'") }}
        {%- endif -%}
        {%- set latest = (modules.datetime.datetime.utcnow() + modules.datetime.timedelta(
            hours=int_var('future_tolerance_hours') | int)).date().isoformat() -%}
        {%- if value > latest -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date (" ~ value ~ ") is in the future: the latest reporting date is "
                ~ latest ~ " (today in UTC, plus future_tolerance_hours); give a date up to it") }}
        {%- endif -%}
        {%- if execute -%}
            {%- set first = run_query(
                "select cast(min(ordered_at) as date) from " ~ orders
            ).columns[0].values()[0] -%}
            {%- if first is not none and value < first | string -%}
                {{ exceptions.raise_compiler_error(
                    "var as_of_date (" ~ value ~ ") is before the first valid order ("
                    ~ first ~ "): there is nothing to report as of it") }}
            {%- endif -%}
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
