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

    With a single key column, the two window functions run only over the rows whose key has
    more than one raw row (a few percent of them): a key seen once is its own first copy and
    its latest version. The raw columns include the key's text, so copies never span keys.
    (sqlfluff cannot count the columns of that union of two `select *`: the models selecting
    from it carry `-- noqa: AM04`.)
-#}
{% macro classify_rows(relation, key_columns, raw_columns, version_at) -%}
{%- set single_key = key_columns | length == 1 -%}
{%- set key = key_columns[0] -%}
with
{% if single_key %}
repeated_keys as (
    select {{ key }}
    from {{ relation }}
    where {{ key }} is not null
    group by {{ key }}
    having count(*) > 1
),

seen_once as (
    select
        *,
        1 as copy_number,
        1 as version_rank
    from {{ relation }}
    where {{ key }} is not null
        and {{ key }} not in (select {{ key }} from repeated_keys)
),

seen_more as (
    select *
    from {{ relation }}
    where {{ key }} is null
        or {{ key }} in (select {{ key }} from repeated_keys)
),
{% endif %}

copies as (
    select
        *,
        row_number() over (
            partition by {{ raw_columns | join(', ') }}, _extra, reject_reason
            order by _loaded_at, _source_file, _source_row
        ) as copy_number
    from {{ 'seen_more' if single_key else relation }}
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
),

ranked as (
    {% if single_key %}
    select * from seen_once
    union all
    {% endif %}
    select * from versions
)

select
    *,
    case
        when reject_reason is not null then 'quarantined'
        when copy_number > 1 then 'duplicate'
        when version_rank = 1 then 'current'
        else 'superseded'
    end as row_disposition
from ranked
{%- endmacro %}
