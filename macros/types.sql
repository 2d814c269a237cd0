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
