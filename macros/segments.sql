{#-
    Segmented marts report every figure for segment_type 'all', 'acquisition_channel' and
    'region' (DESIGN §7). expand_segments turns rows carrying acquisition_channel and region into
    three copies, one per segment type, with segment_type and segment_value in front; the caller
    then aggregates by segment. Expanding pre-aggregated cells instead of customers keeps the
    work small.

    relation: a CTE or relation with columns acquisition_channel and region
    columns:  the other columns to carry through
-#}
{% macro expand_segments(relation, columns) -%}
    {%- set segments = [
        ("'all'", "'all'"),
        ("'acquisition_channel'", "acquisition_channel"),
        ("'region'", "region"),
    ] -%}
    {%- for segment_type, segment_value in segments %}
    select
        {{ segment_type }} as segment_type,
        {{ segment_value }} as segment_value,
        {{ columns | join(',\n        ') }}
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
{%- endmacro %}


{#-
    The retention phase of a cohort period from var retention_phase_bounds
    ({early: [1, 3], mid: [4, 6], late: [7, null]}); period 0 is 'acquisition'.
-#}
{% macro retention_phase(period_number) -%}
    {%- set bounds = var('retention_phase_bounds') -%}
    case
        when {{ period_number }} = 0 then 'acquisition'
        {%- for phase in ['early', 'mid', 'late'] %}
        {%- set low, high = bounds[phase][0], bounds[phase][1] %}
        when {{ period_number }} >= {{ low | int }}
            {%- if high is not none %} and {{ period_number }} <= {{ high | int }}{% endif %}
            then '{{ phase }}'
        {%- endfor %}
    end
{%- endmacro %}
