{#-
    The settings an incremental model's rows were computed with, so that an increment never
    mixes rows computed with two of them. An increment only recomputes what the new data
    touched; the rows it keeps were computed with the vars and seeds of the builds that wrote
    them. After a change to one of these (the reporting currency, an fx rate, a channel's group),
    an increment would leave old rows beside new ones: marts a full refresh would not give.

    After every dbt build or run, raw._dbt_incremental_settings gets one row for each
    incremental model that succeeded: its settings as JSON (record_incremental_settings). Before
    the next build or run without --full-refresh, every selected incremental model whose table
    exists is compared with its latest row, and the invocation stops before any change, naming
    what changed and the command to run (check_incremental_settings). A full refresh records the
    new settings of each model it rebuilt; one that failed half-way leaves the models it did not
    rebuild with their old row, so the next increment asks for the full refresh again. A
    warehouse with no row for a model (built before this check existed) is not checked.
    Insert-only, like raw._dbt_builds, so it works on every engine.
-#}

{#-
    The vars read by an incremental model or by a model or macro upstream of one, with the
    rows they change. as_of_date is not one: it moves every day, and the models follow it
    (macros/incremental.sql). incremental_lookback_hours only widens what is re-processed.
    tests/test_incremental.py compares this list with the vars the code upstream reads.
-#}
{% macro incremental_settings_vars() -%}
    {{ return([
        'churn_inactivity_days',
        'future_tolerance_hours',
        'max_order_amount',
        'min_event_date',
        'reporting_currency',
    ]) }}
{%- endmacro %}


{#-
    The seeds and models upstream of a node. dbt's checksum of a seed file identifies its
    contents, except above 1 MB, where dbt does not read the file and the checksum is its path;
    a model's is that of its SQL (or Python) file.
-#}
{% macro upstream_nodes(unique_id) -%}
    {%- set seen = [] -%}
    {%- set todo = [unique_id] -%}
    {#- each node is queued once: as many rounds as there are nodes empty the queue -#}
    {%- for _ in range(graph.nodes | length + 1) if todo -%}
        {%- set node = graph.nodes.get(todo.pop()) or {} -%}
        {%- for parent in (node.get('depends_on') or {}).get('nodes', []) if parent not in seen -%}
            {%- do seen.append(parent) -%}
            {%- do todo.append(parent) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set upstream = [] -%}
    {%- for parent in seen if parent in graph.nodes
        and graph.nodes[parent].resource_type in ('seed', 'model') -%}
        {%- do upstream.append(graph.nodes[parent]) -%}
    {%- endfor -%}
    {{ return(upstream) }}
{%- endmacro %}


{#-
    The project's macros that the given texts (SQL of models, of macros) may call, as a dict of
    name: md5 of the macro's SQL. A macro is called by a text that names it before "(", or that
    dispatches to it (adapter.dispatch('name'): this target's implementation and the default
    one); the macros those call, and so on. Read from the text, not from the graph: a model's
    depends_on lists only the macros its parse called, not those of its is_incremental() branch
    (raw_rows_to_classify, ...). Macros of dbt and its adapters are not covered: an upgrade of
    them is not a change to the project's SQL.
-#}
{% macro called_project_macros(texts) -%}
    {%- set macros = context[project_name] -%}
    {%- set called = {} -%}
    {%- set seen = {} -%}
    {%- set todo = texts | list -%}
    {#- each text is queued once: the texts and one per macro of the project empty the queue -#}
    {%- for _ in range(texts | length + macros | length + 1) if todo -%}
        {%- set text = todo.pop() -%}
        {%- set names = modules.re.findall('\\b([A-Za-z_][A-Za-z0-9_]*)\\s*\\(', text) -%}
        {%- for name in modules.re.findall('dispatch\\(\\s*[\'"]([A-Za-z0-9_]+)[\'"]', text) -%}
            {%- do names.extend([target.type ~ '__' ~ name, 'default__' ~ name]) -%}
        {%- endfor -%}
        {%- for name in names | unique if name not in seen -%}
            {%- do seen.update({name: true}) -%}
            {%- if macros.get(name) is not none -%}
                {%- set sql = macros[name].macro.macro_sql -%}
                {%- do called.update({name: local_md5(sql)}) -%}
                {%- do todo.append(sql) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(called) }}
{%- endmacro %}


{#-
    The settings of an incremental model, as a dict of strings: 'var <name>', 'seed <name>',
    'code <model>' (the model's own file and those of the models upstream of it: a change to
    their SQL changes the rows an increment writes, not those it keeps) and 'macro <name>' (the
    project's macros those files and their hooks call: called_project_macros).
-#}
{% macro incremental_settings(unique_id) -%}
    {%- set settings = {} -%}
    {#- as the models read them: validated (a bad value is named as such), normalised -#}
    {%- for name in incremental_settings_vars() -%}
        {%- if name == 'reporting_currency' -%}
            {%- set value = reporting_currency() | replace("'", "") -%}
        {%- elif name == 'min_event_date' -%}
            {%- set value = min_event_date_text() -%}
        {%- else -%}
            {%- set value = int_var(name) -%}
        {%- endif -%}
        {%- do settings.update({'var ' ~ name: value | trim}) -%}
    {%- endfor -%}
    {%- set code = [] -%}
    {%- for node in upstream_nodes(unique_id) + [graph.nodes[unique_id]] -%}
        {%- set kind = 'seed ' if node.resource_type == 'seed' else 'code ' -%}
        {%- do settings.update({kind ~ node.name: node.checksum.checksum}) -%}
        {%- if node.resource_type == 'model' -%}
            {%- do code.append(node.raw_code) -%}
            {%- for hook in node.config.get('pre-hook', []) + node.config.get('post-hook', []) -%}
                {%- do code.append(hook.sql) -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for name, checksum in called_project_macros(code).items() -%}
        {%- do settings.update({'macro ' ~ name: checksum}) -%}
    {%- endfor -%}
    {{ return(settings) }}
{%- endmacro %}


{% macro is_incremental_model(node) -%}
    {{ return(node.resource_type == 'model' and node.config.materialized == 'incremental') }}
{%- endmacro %}


{#- on-run-end: the settings of every incremental model this invocation built. -#}
{% macro record_incremental_settings(results) -%}
    {%- set rows = [] -%}
    {%- for result in results if (result.status | string) == 'success'
        and is_incremental_model(result.node) -%}
        {#- validated vars and hex digests: no quote to escape -#}
        {%- set settings = tojson(incremental_settings(result.node.unique_id), sort_keys=true) -%}
        {%- do rows.append(
            "('" ~ invocation_id ~ "', '" ~ result.node.unique_id ~ "', '" ~ settings ~ "', "
            ~ dbt.current_timestamp() ~ ")"
        ) -%}
    {%- endfor -%}
    {%- if rows -%}
        {% do run_query('insert into raw._dbt_incremental_settings values ' ~ rows | join(', ')) %}
    {%- endif -%}
{%- endmacro %}


{#- Stop a build or run that would increment a model built with other settings. -#}
{% macro check_incremental_settings() -%}
    {#- called by record_build_start, after it created the table (no cache lookup of raw,
        whose listing would open a transaction that the hooks' end rolls back) -#}
    {%- if execute and flags.WHICH in ('build', 'run') and not flags.FULL_REFRESH -%}
        {%- set recorded = run_query(
            'select recorded.unique_id, recorded.settings'
            ~ ' from raw._dbt_incremental_settings as recorded'
            ~ ' inner join (select unique_id, max(happened_at) as happened_at'
            ~ ' from raw._dbt_incremental_settings group by unique_id) as latest'
            ~ ' on recorded.unique_id = latest.unique_id'
            ~ ' and recorded.happened_at = latest.happened_at'
            ~ ' order by recorded.unique_id'
        ).rows -%}
        {%- set changes = [] -%}
        {%- set unrecorded = [] -%}
        {%- set models = [] -%}
        {%- for row in recorded if row[0] in selected_resources and row[0] in graph.nodes -%}
            {%- set node = graph.nodes[row[0]] -%}
            {%- if is_incremental_model(node) and adapter.get_relation(
                database=node.database, schema=node.schema, identifier=node.alias
            ) is not none -%}
                {%- set before = fromjson(row[1]) -%}
                {%- set now = incremental_settings(node.unique_id) -%}
                {%- set changed = [] -%}
                {%- set keys = (before.keys() | list) + (now.keys() | list) -%}
                {%- for key in keys | unique | sort if before.get(key) != now.get(key) -%}
                    {%- do changed.append(key) -%}
                    {%- if key not in before -%}
                        {#- recorded by an earlier version of the project, without it -#}
                        {%- if key not in unrecorded -%}{%- do unrecorded.append(key) -%}{%- endif -%}
                    {%- else -%}
                        {%- if key not in now -%}
                            {%- set change = key ~ ' is no longer read' -%}
                        {%- elif key.startswith('var ') -%}
                            {%- set change = key ~ ' changed from ' ~ before[key] ~ ' to ' ~ now[key] -%}
                        {%- elif key.startswith('code ') -%}
                            {%- set change = 'the SQL of model ' ~ key[5:] ~ ' changed' -%}
                        {%- elif key.startswith('macro ') -%}
                            {%- set change = 'the SQL of macro ' ~ key[6:] ~ ' changed' -%}
                        {%- else -%}
                            {%- set change = key ~ ' changed' -%}
                        {%- endif -%}
                        {%- if change not in changes -%}{%- do changes.append(change) -%}{%- endif -%}
                    {%- endif -%}
                {%- endfor -%}
                {%- if changed -%}{%- do models.append(node.schema ~ '.' ~ node.alias) -%}{%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set settings_changed = [] -%}
        {%- for change in changes if change.startswith(('var ', 'seed ')) -%}
            {%- do settings_changed.append(change) -%}
        {%- endfor -%}
        {%- set named = 'the incremental models ' ~ models | join(', ') -%}
        {%- set reasons = [] -%}
        {%- if changes -%}
            {%- do reasons.append(changes | join('; ') ~ ' since ' ~ named ~ ' were built') -%}
        {%- endif -%}
        {%- if unrecorded -%}
            {%- do reasons.append(('they were' if changes else named ~ ' were')
                ~ ' built without a record of ' ~ unrecorded[0]
                ~ (' and ' ~ (unrecorded | length - 1) ~ ' more' if unrecorded | length > 1 else '')
                ~ ' (by an earlier version of the project, or before that was added)') -%}
        {%- endif -%}
        {%- if reasons -%}
            {{ exceptions.raise_compiler_error(
                reasons | join('; ') ~ ': an increment would keep their rows computed with the '
                ~ 'old settings or SQL beside new ones. Rebuild them with `retention run '
                ~ '--full-refresh` or `retention build --full-refresh` (dbt: --full-refresh)'
                ~ (', or put the settings back' if settings_changed else '')) }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
