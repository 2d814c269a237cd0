{#-
    Schemas are the layer names themselves (raw, staging, quarantine, marts, reference) on every
    target, without dbt's default "<target schema>_" prefix, so BI tools and the loader always
    find the same names.
-#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema | trim }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
