{#-
    dbt's `relationships` (every non-null `column_name` of the model is a `field` of `to`),
    counting only the model's rows whose `new_rows_column` is above the highest value a pass of
    this test saw (rows_checked_through in macros/build_log.sql; every row until it passed once).

    For a model whose rows, once past that value, stay as they were or leave, and whose parent
    keys are never removed: the staging views over raw versions (stg_shop__orders,
    stg_shop__nps_responses), where `_loaded_at` is the raw row's landing time. A current row
    landed before the pass was current then (a newer version replaces it only by landing later),
    so it was checked; and a customer once in stg_shop__customers stays there (a later version
    that is rejected leaves the valid one current). An older raw row that becomes current later
    does so because its customer landed (the unknown_customer rule of the base models).
-#}
{% test relationships_of_new_rows(model, column_name, to, field, new_rows_column) %}
with

child as (

    select {{ column_name }} as from_field
    from {{ model }}
    where {{ column_name }} is not null
        and {{ new_rows_column }} > {{ rows_checked_through() }}

),

parent as (

    select {{ field }} as to_field
    from {{ to }}

)

select child.from_field
from child
left join parent
    on child.from_field = parent.to_field
where parent.to_field is null
{% endtest %}
