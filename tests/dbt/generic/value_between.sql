{#-
    Every non-null value of the column is a finite number in [min_value, max_value]; either
    bound may be omitted. NaN and infinities fail whatever the bounds: every engine here sorts
    NaN above every number, so a lower bound alone would let it through, and it would reach the
    marts' sums and averages.
-#}
{% test value_between(model, column_name, min_value=none, max_value=none) %}
select {{ column_name }}
from {{ model }}
where
    {% if min_value is not none %}{{ column_name }} < {{ min_value }}{% else %}false{% endif %}
    or {% if max_value is not none %}{{ column_name }} > {{ max_value }}{% else %}false{% endif %}
    or cast({{ column_name }} as {{ type_double() }}) in (
        cast('NaN' as {{ type_double() }}),
        cast('Infinity' as {{ type_double() }}),
        cast('-Infinity' as {{ type_double() }})
    )
{% endtest %}
