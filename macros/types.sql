{#-
    A double-precision float on every engine. dbt.type_float() is "float", which DuckDB reads as a
    4-byte REAL; rates and averages need 8 bytes.
-#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'retention')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro duckdb__type_double() -%}
    double
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}


{#-
    A whole number of up to 38 digits, with exact arithmetic: DuckDB multiplies two decimals
    of up to 18 digits in 64 bits (and fails above 9.2 x 10^18), so it gets a 128-bit integer.
-#}
{% macro type_whole_number() -%}
    {{ return(adapter.dispatch('type_whole_number', 'retention')()) }}
{%- endmacro %}

{% macro default__type_whole_number() -%}
    decimal(38, 0)
{%- endmacro %}

{% macro duckdb__type_whole_number() -%}
    hugeint
{%- endmacro %}
