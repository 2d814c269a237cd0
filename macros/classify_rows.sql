{#-
    Decide what happens to every raw row of an entity (the core of the reconciliation):

      quarantined  reject_reason is set: the row cannot be trusted
      duplicate    an exact copy (same landed values) of an earlier valid row
      current      the latest version of its key: what staging exposes
      superseded   an older version of the key

    relation:       a CTE with the typed columns, the raw columns, reject_reason and lineage
    key_columns:    the business key (e.g. ['order_id'])
    raw_columns:    the landed text columns that define an exact duplicate
    version_at:     expression ordering versions (latest wins); ties go to the row landed last

    Returns a select with row_disposition added (and helper columns copy_number, version_rank).
-#}
{% macro classify_rows(relation, key_columns, raw_columns, version_at) -%}
with copies as (
    select
        *,
        row_number() over (
            partition by {{ raw_columns | join(', ') }}, _extra, reject_reason
            order by _loaded_at, _source_file, _source_row
        ) as copy_number
    from {{ relation }}
),

versions as (
    select
        *,
        row_number() over (
            partition by
                {{ key_columns | join(', ') }},
                case when reject_reason is null and copy_number = 1 then 1 else 0 end
            order by
                {{ version_at }} desc,
                _loaded_at desc,
                _source_file desc,
                _source_row desc
        ) as version_rank
    from copies
)

select
    *,
    case
        when reject_reason is not null then 'quarantined'
        when copy_number > 1 then 'duplicate'
        when version_rank = 1 then 'current'
        else 'superseded'
    end as row_disposition
from versions
{%- endmacro %}
