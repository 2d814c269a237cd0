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
    {%- set bounds = retention_phase_bounds() -%}
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


{#-
    var retention_phase_bounds, checked: early, mid and late, each [first, last] month since the
    first purchase, whole numbers that follow on from 1 without gap or overlap, late open-ended
    ([n, null]), so every period after 0 has exactly one phase. Anything else stops the build
    naming the var: a gap gave periods without a phase, a closed late range nulls after it.
-#}
{% macro retention_phase_bounds() -%}
    {%- set bounds = var('retention_phase_bounds') -%}
    {%- set example = '{early: [1, 3], mid: [4, 6], late: [7, null]}' -%}
    {%- set ns = namespace(next=1, problem=none) -%}
    {%- if bounds is not mapping or bounds.keys() | list | sort != ['early', 'late', 'mid'] -%}
        {%- set ns.problem = 'it must name early, mid and late' -%}
    {%- else -%}
        {%- for phase in ['early', 'mid', 'late'] if ns.problem is none -%}
            {%- set pair = bounds[phase] -%}
            {%- set last_open = phase == 'late' -%}
            {%- if pair is string or pair is not iterable or pair | length != 2 -%}
                {%- set ns.problem = phase ~ ' must be [first, last]' -%}
            {%- elif pair[0] | string != ns.next | string -%}
                {%- set ns.problem = phase ~ ' must start at month ' ~ ns.next
                    ~ ' (the phases follow on from 1 without gap or overlap)' -%}
            {%- elif last_open and pair[1] is not none -%}
                {%- set ns.problem = 'late must be open-ended: [' ~ ns.next ~ ', null]' -%}
            {%- elif not last_open and not (pair[1] | string | int >= ns.next
                    and pair[1] | string == pair[1] | string | int | string) -%}
                {%- set ns.problem = phase ~ ' must end at a whole month from ' ~ ns.next -%}
            {%- elif not last_open -%}
                {%- set ns.next = pair[1] | int + 1 -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
    {%- if ns.problem is not none -%}
        {{ exceptions.raise_compiler_error(
            "var retention_phase_bounds: " ~ ns.problem ~ ", e.g. " ~ example ~ "; got "
            ~ bounds) }}
    {%- endif -%}
    {{ return(bounds) }}
{%- endmacro %}
