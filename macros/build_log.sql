{#-
    Every `dbt build` / `dbt run` leaves a trace in raw._dbt_builds: a 'started' row when it
    begins and a 'success' or 'failed' row when it ends. A build killed half-way has no end row.
    `retention publish` only publishes marts whose latest build ended in success and was then
    validated, so marts left half-built (or built by hand after validation) never reach BI.
    Insert-only, so it works on every engine.

    raw._dbt_node_results keeps, for every build, run or `dbt test`, the status of each model,
    seed, snapshot and data test it ran (unit tests test the project's code, not the data).
    Publishing refuses while the latest status of a node still in the project is not a pass: a
    later build of a selection that succeeds does not make a failed test elsewhere, or a model it
    skipped, look built; a `dbt test` by hand that fails holds publishing back like a build's,
    and one that passes clears that test (not the models a failed build skipped). A `dbt test`
    writes no row to raw._dbt_builds: it builds nothing.
-#}

{#- the commands whose node statuses the build log keeps -#}
{% macro recorded_commands() -%}
    {{ return(('build', 'run', 'test')) }}
{%- endmacro %}

{% macro record_build_start() -%}
    {%- if execute and flags.WHICH in recorded_commands() -%}
        {#- one statement per call: Spark runs a single statement at a time -#}
        {% do run_query('create schema if not exists raw') %}
        {% do run_query(
            'create table if not exists raw._dbt_builds ('
            ~ 'invocation_id ' ~ dbt.type_string() ~ ', event ' ~ dbt.type_string()
            ~ ', happened_at ' ~ dbt.type_timestamp() ~ ', command ' ~ dbt.type_string()
            ~ ', as_of_date ' ~ dbt.type_string() ~ ', failures ' ~ dbt.type_int() ~ ')'
        ) %}
        {% do run_query(
            'create table if not exists raw._dbt_node_results ('
            ~ 'invocation_id ' ~ dbt.type_string() ~ ', unique_id ' ~ dbt.type_string()
            ~ ', status ' ~ dbt.type_string() ~ ', happened_at ' ~ dbt.type_timestamp() ~ ')'
        ) %}
    {%- endif -%}
    {%- if execute and flags.WHICH in ('build', 'run') %}
        insert into raw._dbt_builds
        values (
            '{{ invocation_id }}', 'started', {{ dbt.current_timestamp() }},
            '{{ flags.WHICH }}', '{{ var("as_of_date") | string | replace("'", "") }}', 0
        )
    {%- endif -%}
{%- endmacro %}

{% macro record_build_end(results) -%}
    {%- if execute and flags.WHICH in recorded_commands() -%}
        {%- set node_rows = [] -%}
        {%- for result in results if result.node.resource_type in ('model', 'seed', 'snapshot', 'test') -%}
            {%- do node_rows.append(
                "('" ~ invocation_id ~ "', '" ~ result.node.unique_id ~ "', '"
                ~ (result.status | string) ~ "', " ~ dbt.current_timestamp() ~ ")"
            ) -%}
        {%- endfor -%}
        {%- if node_rows -%}
            {% do run_query('insert into raw._dbt_node_results values ' ~ node_rows | join(', ')) %}
        {%- endif -%}
    {%- endif -%}
    {%- if execute and flags.WHICH in ('build', 'run') %}
        {%- set failures = results | selectattr('status', 'in', ['error', 'fail', 'runtime error']) | list %}
        insert into raw._dbt_builds
        values (
            '{{ invocation_id }}', '{{ "failed" if failures else "success" }}',
            {{ dbt.current_timestamp() }}, '{{ flags.WHICH }}',
            '{{ var("as_of_date") | string | replace("'", "") }}', {{ failures | length }}
        )
    {%- endif -%}
{%- endmacro %}


{#-
    True (a SQL boolean) when the invocation started last before this one was a `dbt build` that
    succeeded: then every table it wrote was checked by its tests, and a test of an incremental
    model may check only what the latest increment changed (tests/dbt/generic).
-#}
{% macro last_invocation_built_successfully() -%}
    (
        0 < (
            select count(*)
            from raw._dbt_builds as finished
            inner join raw._dbt_builds as started
                on finished.invocation_id = started.invocation_id
            where finished.event = 'success'
                and finished.command = 'build'
                and started.event = 'started'
                and started.invocation_id <> '{{ invocation_id }}'
                and started.happened_at = (
                    select max(earlier.happened_at)
                    from raw._dbt_builds as earlier
                    where earlier.event = 'started'
                        and earlier.invocation_id <> '{{ invocation_id }}'
                )
        )
    )
{%- endmacro %}
