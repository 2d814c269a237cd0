{#-
    Post-hook of every table model: refresh the planner statistics on PostgreSQL. A table created
    by `create table as` has none until autovacuum gets to it, and the models built right after it
    in the same run would be planned blind (int_customer_months took 17 s instead of 0.3 s).
    DuckDB and Spark need nothing.
-#}
{% macro analyze_table() -%}
    {{ return(adapter.dispatch('analyze_table', 'retention')()) }}
{%- endmacro %}

{% macro default__analyze_table() -%}
{%- endmacro %}

{% macro postgres__analyze_table() -%}
    {%- if model.config.materialized in ('table', 'incremental') -%}
        analyze {{ this }}
    {%- endif -%}
{%- endmacro %}


{#-
    How a base model computes the CTE that parses the landed text (`typed as {{ parsed_cte() }}`).
    PostgreSQL: `materialized`, since it otherwise inlines a CTE read once and then re-evaluates
    its expressions wherever the columns are used: in join conditions that is once per candidate
    row pair (5 s -> 0.7 s for 17,000 orders). DuckDB: `not materialized`, like every CTE of the
    stream (inline_cte()). Spark needs nothing.
-#}
{% macro parsed_cte() -%}
    {{ return(adapter.dispatch('parsed_cte', 'retention')()) }}
{%- endmacro %}

{% macro default__parsed_cte() -%}
{%- endmacro %}

{% macro postgres__parsed_cte() -%}
    materialized
{%- endmacro %}

{% macro duckdb__parsed_cte() -%}
    not materialized
{%- endmacro %}


{#-
    `not materialized` for a CTE that is read by more than one stream of a query and is cheaper to
    compute again than to store: the raw rows a base model reads twice (to count each key, then
    to classify the rows), and the parsed rows it splits into keys seen once and keys seen more
    often (classify_rows). DuckDB otherwise stores every row of such a CTE, with its landed text,
    before the first stream reads it: for 10 M orders, 11 GB of intermediate rows (4.3 GB of them
    written to temporary files) and more CPU time than the parsing (23 against 10 s). PostgreSQL
    inlines such a CTE only when told; Spark inlines it anyway and knows no such hint.
-#}
{% macro inline_cte() -%}
    {{ return(adapter.dispatch('inline_cte', 'retention')()) }}
{%- endmacro %}

{% macro default__inline_cte() -%}
{%- endmacro %}

{% macro duckdb__inline_cte() -%}
    not materialized
{%- endmacro %}

{% macro postgres__inline_cte() -%}
    not materialized
{%- endmacro %}
