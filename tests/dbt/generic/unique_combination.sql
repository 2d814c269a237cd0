{#-
    The combination of `columns` is unique in the model (a composite primary key).
    Fails with one row per duplicated combination.

    increment_column (for incremental models that delete every older row of the keys they write,
    by a delete+insert key that is, or is coarser than, `columns`, or by the per-customer
    pre-hook, such as `_loaded_through`): when the invocation before this one was a `dbt build`
    that succeeded, only the rows of the latest increment, those with the column's highest value,
    are checked. The delete before the insert removed every older row of the increment's keys,
    and the older rows were checked by the builds that wrote them: the successful build left a
    checked table. After anything else (a build that failed or was killed, whose rows stay in the
    table; a `dbt run`, which tests nothing; no build recorded yet) every row is checked, so a
    failure is not forgotten by the next increment. A full refresh writes one value, so it checks
    every row either way. The builds are recorded in raw._dbt_builds (macros/build_log.sql).
-#}
{% test unique_combination(model, columns, increment_column=none) %}
select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
{% if increment_column %}
where {{ increment_column }} = (select max({{ increment_column }}) from {{ model }})
    or not {{ last_invocation_built_successfully() }}
{% endif %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
