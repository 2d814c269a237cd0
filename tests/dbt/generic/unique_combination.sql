{#-
    The combination of `columns` is unique in the model (a composite primary key).
    Fails with one row per duplicated combination.

    increment_column (for incremental models whose delete+insert key is, or is coarser than,
    `columns`, such as `_loaded_through`): only the rows of the latest increment, those with the
    column's highest value, are checked. The delete before the insert removed every older row of
    the increment's keys, and the older rows were checked by the build that wrote them; a full
    refresh writes one value, so it checks every row.
-#}
{% test unique_combination(model, columns, increment_column=none) %}
select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
{% if increment_column %}
where {{ increment_column }} = (select max({{ increment_column }}) from {{ model }})
{% endif %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
