{#-
    Reconciliation (DESIGN §6): every landed row is exactly one of current, superseded, an exact
    duplicate or quarantined. Returns the entities where the equation does not hold.
-#}
with

counts as (

    {% for entity in ['customers', 'orders', 'marketing_spend', 'nps_responses'] %}
        {{ reconciliation_counts(entity) }}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

)

select *
from counts
where raw_rows != current_rows + superseded_rows + duplicate_rows + quarantined_rows
