{#-
    The materialization of the incremental models (macros/incremental.sql):
    incremental (delete+insert) where the engine can delete rows, a full rebuild on Spark, whose
    Parquet tables have no delete and no merge without Delta (which would need a download). Spark
    is the engine for data too large for one machine, where a full rebuild parallelises; the
    models give the same rows either way (tests/test_incremental.py, tests/test_targets.py).
-#}
{% macro incremental_where_supported() -%}
    {{ return('table' if target.type == 'spark' else 'incremental') }}
{%- endmacro %}
