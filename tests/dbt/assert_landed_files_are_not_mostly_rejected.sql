{#-
    A landed file most of whose rows are rejected is a feed that changed (a status written
    `complete`, another date format, a new currency), not a few bad rows: its rows went to
    quarantine while every other test passed, and the marts stayed at the last good day without
    a word. Returns each file of an entity's latest load with at least 20 rows of which more than
    var max_rejected_share were quarantined; the reasons are in quarantine.<entity>
    (`where _source_file = ...`). A file loaded since passes the entity again; to publish with
    such a load, raise the var (1 turns the check off).
-#}
{%- set share = rate_var('max_rejected_share') %}
with

landed as (

    {% for entity in ['customers', 'orders', 'nps_responses', 'marketing_spend'] %}
        select
            '{{ entity }}' as entity,
            _source_file,
            _loaded_at,
            row_disposition
        from {{ ref('base_shop__' ~ entity) }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

latest_loads as (

    select
        entity,
        max(_loaded_at) as _loaded_at
    from landed
    group by entity

),

files as (

    select
        landed.entity,
        landed._source_file,
        landed._loaded_at,
        count(*) as landed_rows,
        sum(case when landed.row_disposition = 'quarantined' then 1 else 0 end) as rejected_rows
    from landed
    inner join latest_loads
        on landed.entity = latest_loads.entity
        and landed._loaded_at = latest_loads._loaded_at
    group by landed.entity, landed._source_file, landed._loaded_at

)

select
    entity,
    _source_file,
    _loaded_at,
    landed_rows,
    rejected_rows
from files
where
    landed_rows >= 20
    and rejected_rows > {{ share }} * landed_rows
