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
