{#-
    Row accounting for one entity, as a one-row select:
      raw_rows = current_rows + superseded_rows + duplicate_rows + quarantined_rows
    The counts come from the raw source, the staging model, the quarantine model and the
    classified base table, so a row lost or doubled anywhere in between breaks the equation.
-#}
{% macro reconciliation_counts(entity) -%}
select
    '{{ entity }}' as entity,
    (select count(*) from {{ source('shop', entity) }}) as raw_rows,
    (select count(*) from {{ ref('stg_shop__' ~ entity) }}) as current_rows,
    (
        select count(*) from {{ ref('base_shop__' ~ entity) }}
        where row_disposition = 'superseded'
    ) as superseded_rows,
    (
        select count(*) from {{ ref('base_shop__' ~ entity) }}
        where row_disposition = 'duplicate'
    ) as duplicate_rows,
    (select count(*) from {{ ref('quarantine_' ~ entity) }}) as quarantined_rows
{%- endmacro %}


{#-
    A one-row, one-column select (may_differ): false only when the values of `column` in the
    relations `left` and `right` are known to be the same multiset, so that a test comparing
    them row by row can skip the comparison. (`left` and `right`: CTE names or relations.)

    On DuckDB both sides are fingerprinted by their row count and the sum of the values' 64-bit
    hashes, one scan each, and a missing value always counts as a difference (a join would not
    match it). Different sets with the same fingerprint need hash sums that collide: a chance
    of about one in 2^64. At 1 M customers the orders test took 0.4-0.55 s instead of
    0.9-1.2 s when the sets are equal (its usual case), and 1.1 s, the join's time, when they
    differ. Elsewhere the answer is always true: the rows are compared.
-#}
{% macro values_may_differ(left, right, column) -%}
    {{ return(adapter.dispatch('values_may_differ', 'retention')(left, right, column)) }}
{%- endmacro %}

{% macro default__values_may_differ(left, right, column) -%}
    select true as may_differ
{%- endmacro %}

{% macro duckdb__values_may_differ(left, right, column) -%}
    {%- set fingerprint -%}
        count(*) as values_n,
        count({{ column }}) as not_null_n,
        coalesce(sum(hash({{ column }})), 0) as hash_sum
    {%- endset %}
    select
        left_side.values_n <> right_side.values_n
        or left_side.hash_sum <> right_side.hash_sum
        or left_side.values_n <> left_side.not_null_n
        or right_side.values_n <> right_side.not_null_n as may_differ
    from (select {{ fingerprint }} from {{ left }}) as left_side
    cross join (select {{ fingerprint }} from {{ right }}) as right_side
{%- endmacro %}
