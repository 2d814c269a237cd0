{#-
    The reporting date every mart is computed as of (a SQL expression of type date).

    The date asked for (as_of_date_var(): var('as_of_date') or RETENTION_AS_OF_DATE) when set
    (validated as YYYY-MM-DD, so it is never interpolated as free text), otherwise the date of
    the latest valid order, or the date the last build was for
    when that is later (as_of_built_for()): a run without a date after one with a later date
    (the Dagster schedule's day, then the landing sensor's run before the day's orders
    are in) continues from it instead of being refused for moving back. Orders and purchases
    after this date are ignored, so results for a past date are reproducible. A set date must
    lie between the first valid order and today (UTC, plus future_tolerance_hours): a date in the
    future would give every customer ages and inactivity that have not happened, and the
    incremental models would refuse every later, earlier date until a full refresh; before the
    first order there is nothing to report.
-#}
{% macro as_of_date() -%}
    {#- outside the branches: dbt records the dependency whichever the parse takes -#}
    {%- set orders = ref('stg_shop__orders') -%}
    {%- set value = as_of_date_var() -%}
    {%- if value in ('', 'none', 'None') -%}
        {%- set built_for = as_of_built_for() -%}
        {%- if built_for is none -%}
        (select cast(max(ordered_at) as date) from {{ orders }})
        {%- else -%}
        greatest(
            (select cast(max(ordered_at) as date) from {{ orders }}),
            cast('{{ built_for }}' as date)
        )
        {%- endif -%}
    {%- else -%}
        {%- do check_date_var('as_of_date', value) -%}
        {%- set latest = (modules.datetime.datetime.utcnow() + modules.datetime.timedelta(
            hours=int_var('future_tolerance_hours') | int)).date().isoformat() -%}
        {%- if value > latest -%}
            {{ exceptions.raise_compiler_error(
                "var as_of_date (" ~ value ~ ") is in the future: the latest reporting date is "
                ~ latest ~ " (today in UTC, plus future_tolerance_hours); give a date up to it") }}
        {%- endif -%}
        {%- if execute -%}
            {%- set first = run_query(
                "select cast(min(ordered_at) as date) from " ~ orders
            ).columns[0].values()[0] -%}
            {%- if first is not none and value < first | string -%}
                {{ exceptions.raise_compiler_error(
                    "var as_of_date (" ~ value ~ ") is before the first valid order ("
                    ~ first ~ "): there is nothing to report as of it") }}
            {%- endif -%}
        {%- endif -%}
        {%- set accepted = as_of_built_for(models_only=true) -%}
        {%- if accepted is not none and value < accepted -%}
            {#- refused here, before int_reporting_dates is replaced: a build without a date
                after this one continues from the date the last build was for -#}
            {{ exceptions.raise_compiler_error(
                "as_of_date (" ~ value ~ ") is before the one the incremental models were built "
                ~ "for (" ~ accepted ~ "); give a date from " ~ accepted ~ " on, or rebuild "
                ~ "with `retention build --full-refresh`") }}
        {%- endif -%}
        cast('{{ value }}' as date)
    {%- endif -%}
{%- endmacro %}


{#-
    The reporting date asked for, as text ('' for none): var('as_of_date'), or else the
    environment variable RETENTION_AS_OF_DATE, which the retention commands and the Dagster steps
    set instead of the var. dbt parses the whole project again whenever its vars differ from the
    last parse's (about 5 s of one core), but when an environment variable changes only the files
    that read it: here int_reporting_dates, the one model that calls as_of_date(). A daily build
    has a new date every day.
-#}
{% macro as_of_date_var() -%}
    {%- set value = var('as_of_date', '') | string | trim -%}
    {%- if value in ('', 'none', 'None') -%}
        {%- set value = env_var('RETENTION_AS_OF_DATE', '') | trim -%}
    {%- endif -%}
    {{ return(value) }}
{%- endmacro %}


{#-
    The as_of_date of the last build, or none: on a first build or a full refresh, on engines
    that rebuild every model in full, and before anything runs (parse, compile). The latest of
    int_reporting_dates as it stands before this build replaces it and of the dates the models
    that refuse an earlier one (check_as_of_not_earlier) were built for; with models_only, of
    those models alone: the earliest date they accept.
-#}
{% macro as_of_built_for(models_only=false) -%}
    {%- if not execute or flags.FULL_REFRESH or incremental_where_supported() != 'incremental' -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set queries = [] -%}
    {%- for node in graph.get('nodes', {}).values() if node.resource_type == 'model' -%}
        {%- set column = 'as_of_date' if node.name == 'int_reporting_dates' and not models_only else (
            '_as_of_date' if 'macro.retention.check_as_of_not_earlier'
                in node.depends_on.macros else none) -%}
        {%- set relation = adapter.get_relation(
            database=node.database, schema=node.schema, identifier=node.alias
        ) if column else none -%}
        {%- if relation is not none and column in (adapter.get_columns_in_relation(relation)
                | map(attribute='name') | map('lower') | list) -%}
            {%- do queries.append('select max(' ~ column ~ ') as built_for from ' ~ relation) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not queries -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set built_for = run_query(
        'select max(built_for) from (' ~ queries | join(' union all ') ~ ') as built'
    ).rows[0][0] -%}
    {{ return(none if built_for is none else built_for | string) }}
{%- endmacro %}


{#-
    An integer var, checked: a non-integer (or one below minimum) is a clear compile error, not
    SQL text.
-#}
{% macro int_var(name, minimum=0) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[0-9]+$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a non-negative whole number, got '" ~ value ~ "'") }}
    {%- endif -%}
    {%- if value | int < minimum -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a whole number of at least " ~ minimum ~ ", got '"
            ~ value ~ "'") }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}


{#-
    A yearly rate var from 0 to 1 (0.10 is 10 %), checked: anything else is a clear compile
    error (the CLV model would otherwise fail only once the build reached it).
-#}
{% macro rate_var(name) -%}
    {%- set value = var(name) | string | trim -%}
    {%- if not modules.re.match('^[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$', value)
        or not (0 <= value | float <= 1) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a number from 0 to 1 (0.10 is 10 %), got '" ~ value ~ "'") }}
    {%- endif -%}
    {{ value }}
{%- endmacro %}


{#- The reporting currency var, checked to be a three-letter ISO-4217 code. -#}
{% macro reporting_currency() -%}
    {%- set value = var('reporting_currency') | string | trim | upper -%}
    {%- if not modules.re.match('^[A-Z]{3}$', value) -%}
        {{ exceptions.raise_compiler_error(
            "var reporting_currency must be an ISO-4217 code such as USD, got '" ~ value ~ "'") }}
    {%- endif -%}
    '{{ value }}'
{%- endmacro %}


{#-
    Stop with a clear message unless value (var name's) is a real date written YYYY-MM-DD:
    2024-02-30 matches the pattern but would fail in SQL, naming neither the var nor the fix.
-#}
{% macro check_date_var(name, value) -%}
    {%- set parts = modules.re.match('^([0-9]{4})-(0[1-9]|1[0-2])-([0-9]{2})$', value) -%}
    {%- set ns = namespace(last_day=0) -%}
    {%- if parts and parts.group(1) | int >= 1 -%}
        {%- set year = parts.group(1) | int -%}
        {%- set leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) -%}
        {%- set ns.last_day = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][
            parts.group(2) | int - 1] -%}
    {%- endif -%}
    {%- if not parts or not (1 <= parts.group(3) | int <= ns.last_day) -%}
        {{ exceptions.raise_compiler_error(
            "var " ~ name ~ " must be a date written YYYY-MM-DD, got '" ~ value ~ "'") }}
    {%- endif -%}
{%- endmacro %}


{#-
    The earliest event date staging accepts (var min_event_date): an order, signup, NPS answer
    or spend month before it is quarantined as timestamp_before_min_date. A placeholder date
    (1900-01-01, 0001-01-01) would otherwise start the monthly calendar a century back: marts
    with a row for every empty month since, or none at all once the span passes what
    int_calendar_months generates.
-#}
{% macro min_event_date() -%}
    cast('{{ min_event_date_text() }}' as date)
{%- endmacro %}


{#- var min_event_date, checked, as its YYYY-MM-DD text (also what the incremental settings record). -#}
{% macro min_event_date_text() -%}
    {%- set value = var('min_event_date') | string | trim -%}
    {%- do check_date_var('min_event_date', value) -%}
    {{ return(value) }}
{%- endmacro %}
