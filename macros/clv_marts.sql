{#-
    The relation of a predictive-CLV mart (clv_model_parameters, customer_lifetime_value,
    clv_backtest). On DuckDB they are dbt Python models; engines without dbt Python models
    (PostgreSQL, Spark) get the same tables from the pipeline (retention.targets.run_clv), declared
    as the source 'clv'. Models that read them use this macro, so the DAG is right on every
    target.
-#}
{% macro clv_mart(name) -%}
    {%- if target.type == 'duckdb' -%}
        {{ ref(name) }}
    {%- else -%}
        {{ source('clv', name) }}
    {%- endif -%}
{%- endmacro %}
