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

    raw._dbt_incremental_settings keeps the vars and seeds each incremental model was built
    with; a build that would continue a model with others stops before the 'started' row
    (macros/incremental_settings.sql).

    raw._dbt_checked_through keeps, for each pass of a test with a `new_rows_column` (the
    uniqueness tests of raw.*), the column's highest value in the table it tested: every row up
    to it was checked (rows_checked_through).
-#}

{#- the commands whose node statuses the build log keeps -#}
{% macro recorded_commands() -%}
    {{ return(('build', 'run', 'test')) }}
{%- endmacro %}

{% macro record_build_start() -%}
    {%- if execute and flags.WHICH in recorded_commands() -%}
        {#- one statement per call: Spark runs a single statement at a time -#}
        {% do run_query('create schema if not exists raw') %}
        {{- check_raw_loaded() -}}
        {%- set text, timestamp = dbt.type_string(), dbt.type_timestamp() -%}
        {%- set tables = {
            '_dbt_builds': [
                ('invocation_id', text), ('event', text), ('happened_at', timestamp),
                ('command', text), ('as_of_date', text), ('failures', dbt.type_int()),
            ],
            '_dbt_node_results': [
                ('invocation_id', text), ('unique_id', text), ('status', text),
                ('happened_at', timestamp),
            ],
            '_dbt_checked_through': [
                ('invocation_id', text), ('unique_id', text), ('checked_through', timestamp),
            ],
            '_dbt_incremental_settings': [
                ('invocation_id', text), ('unique_id', text), ('settings', text),
                ('happened_at', timestamp),
            ],
        } -%}
        {%- for name, columns in tables.items() %}
        {% do run_query(
            'create table if not exists raw.' ~ name
            ~ ' (' ~ columns | map('join', ' ') | join(', ') ~ ')'
        ) %}
        {%- endfor %}
    {%- endif -%}
    {#- before the 'started' row: a build it stops has changed nothing, and leaves no trace -#}
    {{- check_incremental_settings() -}}
    {%- if execute and flags.WHICH in ('build', 'run') %}
        insert into raw._dbt_builds
        values (
            '{{ invocation_id }}', 'started', {{ dbt.current_timestamp() }},
            '{{ flags.WHICH }}', '{{ as_of_date_var() | replace("'", "") }}', 0
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
        {{ record_checked_through(results) }}
    {%- endif -%}
    {%- if execute and flags.WHICH in ('build', 'run') %}
        {{- record_incremental_settings(results) }}
        {%- set failures = results | selectattr('status', 'in', ['error', 'fail', 'runtime error']) | list %}
        insert into raw._dbt_builds
        values (
            '{{ invocation_id }}', '{{ "failed" if failures else "success" }}',
            {{ dbt.current_timestamp() }}, '{{ flags.WHICH }}',
            '{{ as_of_date_var() | replace("'", "") }}', {{ failures | length }}
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


{#-
    After an invocation: for every test with a `new_rows_column` argument that passed, the
    column's highest value in the table or source it tested, in raw._dbt_checked_through. Nothing
    changes the tested rows between the test and this hook (a load waits for the build), so
    every row up to that value was checked. One statement per test (Spark).
-#}
{% macro record_checked_through(results) -%}
    {%- for result in results if result.node.resource_type == 'test'
        and (result.status | string) == 'pass'
        and ((graph.nodes.get(result.node.unique_id) or {}).get('test_metadata') or {})
            .get('kwargs', {}).get('new_rows_column') -%}
        {%- set node = graph.nodes[result.node.unique_id] -%}
        {%- set column = node.test_metadata.kwargs.new_rows_column -%}
        {#- the model a test is defined on; a source test depends on its source only -#}
        {%- set tested = node.attached_node or node.depends_on.nodes[0] -%}
        {%- set parent = graph.sources[tested] if tested in graph.sources else graph.nodes[tested] -%}
        {%- set relation = api.Relation.create(
            database=parent.database, schema=parent.schema,
            identifier=parent.identifier if tested in graph.sources else parent.alias
        ) -%}
        {% do run_query(
            "insert into raw._dbt_checked_through select '" ~ invocation_id ~ "', '"
            ~ result.node.unique_id ~ "', max(" ~ column ~ ") from " ~ relation
        ) %}
    {%- endfor -%}
{%- endmacro %}


{#-
    For a test of a table that only ever gets rows added (raw.*), as SQL: the highest value of
    its `new_rows_column` up to which a pass of the calling test checked every row
    (raw._dbt_checked_through), or 1900-01-01 if it never passed. A failed run records nothing,
    so the rows it failed on are checked again. Called from a generic test, where `model` is
    the test's own node (the test's `model` argument is the relation it tests).

    Moved back by var('incremental_lookback_hours') (before_lookback), as the incremental
    models' watermark is: another tool may commit rows stamped earlier than rows already checked.
-#}
{% macro rows_checked_through() -%}
    {%- set checked_through -%}
        (
            select max(checked_through)
            from raw._dbt_checked_through
            where unique_id = '{{ model.unique_id }}'
        )
    {%- endset -%}
    coalesce(
        {{ before_lookback(checked_through) }},
        cast('1900-01-01' as {{ dbt.type_timestamp() }})
    )
{%- endmacro %}


{#-
    A build or run before anything was loaded stops with what to do, instead of a Catalog
    Error per model that reads raw.customers or raw.orders. The tables are looked up with
    run_query, not adapter.get_relation: that opens a transaction, which dbt rolls back after
    the hooks, with the build log's tables created in it.
-#}
{% macro check_raw_loaded() -%}
    {%- set sources = ['source.retention.shop.customers', 'source.retention.shop.orders'] -%}
    {%- set reads_raw = namespace(any=false) -%}
    {%- for unique_id in selected_resources if unique_id in graph.nodes -%}
        {%- if graph.nodes[unique_id].depends_on.nodes | select('in', sources) | list -%}
            {%- set reads_raw.any = true -%}
        {%- endif -%}
    {%- endfor -%}
    {#- a selection that reads neither (seeds alone, say) builds without them -#}
    {%- if execute and flags.WHICH in ('build', 'run') and reads_raw.any -%}
        {%- set found = adapter.dispatch('raw_table_names', 'retention')() -%}
        {%- set missing = [] -%}
        {%- for entity in ['customers', 'orders'] if entity not in found -%}
            {%- do missing.append('raw.' ~ entity) -%}
        {%- endfor -%}
        {%- if missing -%}
            {{ exceptions.raise_compiler_error(
                "nothing loaded yet: " ~ missing | join(' and ') ~ " do not exist. What to do: "
                ~ "put the landing files under $RETENTION_DATA_DIR/landing/<entity>/ and run "
                ~ "`retention load` (or `retention run`, which loads and builds)") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro default__raw_table_names() -%}
    {%- set rows = run_query(
        "select lower(table_name) from information_schema.tables where table_schema = 'raw'"
    ) -%}
    {{ return(rows.columns[0].values() | list) }}
{%- endmacro %}

{% macro spark__raw_table_names() -%}
    {%- set rows = run_query('show tables in raw') -%}
    {{ return(rows.columns['tableName'].values() | map('lower') | list) }}
{%- endmacro %}
