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

    new_rows_column (for tables that only ever get rows added, like raw.*, where it is one of
    `columns` and grows with each load, such as `_loaded_at`): only the rows whose column is
    above the highest value a pass of this test saw (rows_checked_through) are checked. A
    duplicate shares the column's value, so both its rows are among them or neither; the rows
    up to that value were checked by that pass, and nothing removes or changes them.
-#}
{% test unique_combination(model, columns, increment_column=none, new_rows_column=none) %}
select
    {{ columns | join(', ') }},
    count(*) as n_rows
from {{ model }}
{% if increment_column %}
where {{ increment_column }} = (select max({{ increment_column }}) from {{ model }})
    or not {{ last_invocation_built_successfully() }}
{% elif new_rows_column %}
where {{ new_rows_column }} > {{ rows_checked_through() }}
{% endif %}
group by {{ columns | join(', ') }}
having count(*) > 1
{% endtest %}
