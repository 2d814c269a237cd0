{#-
    Incremental processing of customers and orders (base_shop__customers, base_shop__orders,
    int_orders_flagged, int_customer_purchase_days, int_customer_months).

    The watermark is the load time, not the event time: every raw row carries _loaded_at, and
    each incremental model stores in _loaded_through the latest _loaded_at of raw.orders and
    raw.customers it has seen (loaded_through(): no later than the incremental models it reads). A run processes the rows loaded after that watermark minus
    var('incremental_lookback_hours'), together with every other version of the orders they
    touch. So a late-arriving version (a refund for a two-year-old order) is applied however old
    the order is. `retention load` stamps each load strictly later than the one before, so the
    default lookback is 0; raise it when another tool writes raw.* and can commit rows stamped
    earlier than rows already visible (re-processing is idempotent).

    Changing a var or seed the models depend on (churn_inactivity_days, fx rates, ...) needs
    `retention build --full-refresh`: the build refuses to mix them
    (macros/incremental_settings.sql).
-#}

{#-
    The latest load time of the sources an incremental model follows (a scalar subquery): by
    default orders and customers; base_shop__customers follows customers,
    base_shop__nps_responses NPS responses and customers.
-#}
{% macro sources_loaded_through(entities=['orders', 'customers']) -%}
    (
        select max(loaded_at) from (
            {%- for entity in entities %}
            select max(_loaded_at) as loaded_at from {{ source('shop', entity) }}
            {%- if not loop.last %}
            union all
            {%- endif %}
            {%- endfor %}
        ) as sources
    )
{%- endmacro %}

{#-
    An incremental model's _loaded_through: the latest load time of the sources it follows, but
    no later than what an incremental model it reads (directly, or through views and tables) has
    taken in when that model is behind, that is when its own sources have rows loaded after its
    _loaded_through. A model built while one it reads is behind (`retention build --select` of
    part of the graph) stays behind with it, and its next increment takes in what that model took
    in since; stamped with the sources' latest load, it would skip those rows for good. A model
    that is not behind does not hold anything back, also when it wrote nothing for a while (the
    customers on a day without customer rows).
-#}
{% macro loaded_through(entities=['orders', 'customers']) -%}
    {%- set upstream = incremental_ancestors(model.unique_id) if execute else [] -%}
    {%- if upstream -%}
        {#- each source's latest load read once (a scalar read twice is a plan DuckDB stores) -#}
        {%- set read = entities | list -%}
        {%- for ancestor in upstream -%}
            {%- for entity in ancestor.entities if entity not in read -%}
                {%- do read.append(entity) -%}
            {%- endfor -%}
        {%- endfor -%}
        (
            select least(
                greatest({{ entities | join('_at, ') }}_at)
                {%- for ancestor in upstream %},
                (
                    select case
                        when max(_loaded_through) < greatest({{ ancestor.entities | join('_at, ') }}_at)
                            then max(_loaded_through)
                    end
                    from {{ ancestor.relation }}
                )
                {%- endfor %}
            )
            from (
                select
                    {%- for entity in read %}
                    (select max(_loaded_at) from {{ source('shop', entity) }}) as {{ entity }}_at
                    {{- ',' if not loop.last }}
                    {%- endfor %}
            ) as latest_loads
        )
    {%- else -%}
        {{ sources_loaded_through(entities) }}
    {%- endif -%}
{%- endmacro %}

{#-
    The incremental models a node reads: its incremental parents, and those of its other model
    parents (views and tables), up the graph; each once, as its relation and the raw entities
    it follows (its shop sources).
-#}
{% macro incremental_ancestors(unique_id) -%}
    {%- set found = [] -%}
    {#- (a unit test's context has no graph: its inputs are fixtures) -#}
    {%- set node = graph.get('nodes', {}).get(unique_id) -%}
    {%- for parent_id in (node.depends_on.nodes if node else [])
        if parent_id.startswith('model.') -%}
        {%- set parent = graph['nodes'][parent_id] -%}
        {%- if parent.config.materialized == 'incremental' -%}
            {%- set entities = [] -%}
            {%- for source_id in parent.depends_on.nodes
                if source_id.startswith('source.') and source_id.split('.')[2] == 'shop' -%}
                {%- do entities.append(source_id.split('.')[3]) -%}
            {%- endfor -%}
            {%- set ancestors = [{
                'relation': api.Relation.create(
                    database=parent.database, schema=parent.schema, identifier=parent.alias),
                'entities': entities,
            }] -%}
        {%- else -%}
            {%- set ancestors = incremental_ancestors(parent_id) -%}
        {%- endif -%}
        {%- for ancestor in ancestors
            if ancestor.relation | string not in found | map(attribute='relation')
                | map('string') | list -%}
            {%- do found.append(ancestor) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#-
    The value of a one-row, one-column query as a constant of sql_type, read when an increment
    runs (the query may read the model's own table). The planner then sees a constant, not a
    scalar subquery: DuckDB skips the row groups of raw.* loaded before a watermark (they are
    stored in load order) and builds its hash tables on the few new keys rather than on the
    millions of old ones (0.4 -> 0.02 s per lookup at 1 M customers). Elsewhere (parse, compile,
    a first build) it is the subquery itself.
-#}
{% macro query_constant(query, sql_type) -%}
    {%- if execute and is_incremental() -%}
        {%- set value = run_query(query).rows[0][0] -%}
        {%- if value is none -%}
            cast(null as {{ sql_type }})
        {%- else -%}
            cast('{{ value }}' as {{ sql_type }})
        {%- endif -%}
    {%- else -%}
        ({{ query }})
    {%- endif -%}
{%- endmacro %}

{#-
    A load time (SQL) moved back by var('incremental_lookback_hours'): rows loaded after it are
    new to whoever saw everything loaded up to the given time, also when another tool commits
    rows stamped earlier than rows already visible. Unchanged without a lookback (Spark's
    dateadd by hours drops the fraction of a second).
-#}
{% macro before_lookback(loaded_at) -%}
    {%- set hours = int_var('incremental_lookback_hours') | int -%}
    {%- if hours > 0 -%}
        {{ dbt.dateadd('hour', '-' ~ hours, loaded_at) }}
    {%- else -%}
        {{ loaded_at }}
    {%- endif -%}
{%- endmacro %}

{#- Rows loaded after this moment are new to the incremental model being built (a constant). -#}
{% macro incremental_watermark() -%}
    {%- set built_through = query_constant(
        "select max(_loaded_through) from " ~ this, dbt.type_timestamp()) -%}
    coalesce(
        {{ before_lookback(built_through) }},
        cast('1900-01-01' as {{ dbt.type_timestamp() }})
    )
{%- endmacro %}

{#-
    The keys (key_column's cleaned text, named key_name) whose raw rows a base model that depends
    on its customers classifies again: keys with a raw row loaded after the watermark, and the
    keys of customers with a new customer row (a row waiting for its customer passes once the
    customer has landed; a customer's new version can make its rows pass or fail).
-#}
{% macro keys_to_reclassify(relation, key_column, key_name, watermark) -%}
    select {{ clean_text(key_column) }} as {{ key_name }}
    from {{ relation }}
    where _loaded_at > {{ watermark }}
    union
    select {{ key_name }} from {{ this }}
    where customer_key in ({{ customers_with_new_rows(watermark) }})
{%- endmacro %}

{#- The (cleaned) ids of the customers with a raw row loaded after the watermark. -#}
{% macro customers_with_new_rows(watermark) -%}
    select {{ clean_text('customer_id') }}
    from {{ source('shop', 'customers') }}
    where _loaded_at > {{ watermark }}
{%- endmacro %}

{#-
    The raw rows an incremental base model classifies again: those loaded after the watermark
    (incremental_watermark(), read once by the model) and every other row of the same keys (the
    `keys` select of cleaned keys, found in the model's own key_name column). A raw row is
    (_source_file, _source_row, _loaded_at): a file landed again under its name is loaded again,
    and its rows are new rows. One row per raw row, also if raw.* was written twice by another
    tool (the source test says so, but delete+insert would silently keep both copies: PITFALLS 8).

    The older rows of those keys are found by their raw row in the model, which holds every raw
    row loaded up to the watermark with its key already cleaned (cleaning the key of each of
    10 M raw orders to match it took 0.6 s of a day's build), and DuckDB then reads just those
    rows by their rowid (a join reads every column of every raw row first: 1.2 s).

    With with_customers, also the rows without a key of customers with a new customer row: no
    key brings them back, but whether their customer is known is part of their classification.
-#}
{% macro raw_rows_to_classify(relation, key_name, keys, watermark, with_customers=false) -%}
    {%- set earlier_rows -%}
        select raw_rows.{{ 'rowid' if target.type == 'duckdb' else '*' }}
        from {{ relation }} as raw_rows
        inner join (
            select distinct _source_file, _source_row, _loaded_at
            from {{ this }}
            where {{ key_name }} in ({{ keys }})
                and _loaded_at <= {{ watermark }}
            {%- if with_customers %}
            union
            select _source_file, _source_row, _loaded_at
            from {{ this }}
            where {{ key_name }} is null
                and customer_key in ({{ customers_with_new_rows(watermark) }})
                and _loaded_at <= {{ watermark }}
            {%- endif %}
        ) as classified
            on raw_rows._source_file = classified._source_file
            and raw_rows._source_row = classified._source_row
            and raw_rows._loaded_at = classified._loaded_at
    {%- endset %}
    select *
    from (
        select
            *,
            row_number() over (
                partition by _source_file, _source_row, _loaded_at order by _source_row
            ) as batch_copy
        from (
            select * from {{ relation }}
            where _loaded_at > {{ watermark }}
            union all
            {% if target.type == 'duckdb' -%}
            select * from {{ relation }}
            where rowid in ({{ earlier_rows }})
            {%- else -%}
            {{ earlier_rows }}
            {%- endif %}
        ) as landed
    ) as numbered
    where batch_copy = 1
{%- endmacro %}

{#-
    The config of the incremental base models (base_shop__orders, base_shop__customers,
    base_shop__nps_responses): {{ config(**raw_row_increment()) }}. The unique key is the raw row,
    so the rows classified again replace their previous classification.
-#}
{% macro raw_row_increment() -%}
    {{ return({
        'materialized': incremental_where_supported(),
        'incremental_strategy': 'delete+insert',
        'unique_key': ['_source_file', '_source_row', '_loaded_at'],
        'on_schema_change': 'fail',
    }) }}
{%- endmacro %}

{#-
    The customers whose purchase history may have changed since the model being built was last
    built: the customers of the rows base_shop__orders classified again since, which are every
    version of the orders that received a new raw row or have a version naming a customer who
    received one (such a version may now pass, or fail: an order moved to a customer who landed
    a day later leaves its first customer), each stamped with that build's _loaded_through; and
    the customers with a new raw row themselves (their segment or validity may have changed).
    Read from base_shop__orders, not from the raw rows: what it has not classified yet is not
    there to recompute from, and the model's watermark stays behind with it (loaded_through()).
-#}
{% macro changed_customers_since_watermark() -%}
    {%- set watermark = incremental_watermark() -%}
    select customer_key as customer_id
    from {{ ref('base_shop__orders') }}
    where _loaded_through > {{ watermark }}
        and customer_key is not null
    union
    select {{ clean_text('customer_id') }} as customer_id
    from {{ source('shop', 'customers') }}
    where _loaded_at > {{ watermark }}
        and {{ clean_text('customer_id') }} is not null
{%- endmacro %}

{#-
    The customers whose current orders up to as_of_date may differ from what the model being
    built holds (int_orders_flagged, int_customer_purchase_days): the changed customers, and the
    customers with an order after the as_of_date the model was last built for (as_of_date moved
    forward). The model stores that date in _as_of_date.
-#}
{% macro customers_to_recompute() -%}
    {{ changed_customers_since_watermark() }}
    union
    select customer_id
    from {{ ref('stg_shop__orders') }}
    where cast(ordered_at as date) > coalesce(
            {{ query_constant("select max(_as_of_date) from " ~ this, 'date') }},
            cast('1900-01-01' as date)
        )
        and cast(ordered_at as date) <= {{ query_constant(
            "select as_of_date from " ~ ref('int_reporting_dates'), 'date') }}
{%- endmacro %}

{#-
    Pre-hook of the per-customer incremental models: delete the rows of the customers (a select
    of customer_id) the run recomputes from scratch. Those models then append: every row they
    write belongs to one of these customers, so a delete by key after the pre-hook finds nothing
    (it cost 0.4-0.5 s per model and day at 1 M customers).
-#}
{% macro forget_customers(customers) -%}
    {%- if is_incremental() -%}
        delete from {{ this }}
        where customer_id in ({{ customers }})
    {%- endif -%}
{%- endmacro %}

{#-
    The config of the per-customer incremental models (int_orders_flagged,
    int_customer_purchase_days, int_customers_purchases_aggregated):
    {{ config(**per_customer_increment()) }}. The pre-hook deletes the customers to recompute;
    the model then appends all their rows.
-#}
{% macro per_customer_increment() -%}
    {{ return({
        'materialized': incremental_where_supported(),
        'incremental_strategy': 'append',
        'on_schema_change': 'fail',
        'pre_hook': "{{ forget_customers(customers_to_recompute()) }}",
    }) }}
{%- endmacro %}

{#-
    Refuse an increment of a table built by an earlier version of the project, without the
    bookkeeping columns an increment reads, and say what to do.
-#}
{% macro check_increment_columns(columns) -%}
    {%- if execute and is_incremental() -%}
        {%- set existing = adapter.get_columns_in_relation(this)
            | map(attribute='name') | map('lower') | list -%}
        {%- for column in columns if column not in existing -%}
            {{ exceptions.raise_compiler_error(
                this.identifier ~ " has no column " ~ column ~ " (built by an earlier version of "
                ~ "the project); rebuild with `retention build --full-refresh`") }}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#-
    Refuse (before any change) an increment for an as_of_date before the one the model was built
    for: its rows after the new date would stay.
-#}
{% macro check_as_of_not_earlier() -%}
    {{ check_increment_columns(['_loaded_through', '_as_of_date']) }}
    {%- if execute and is_incremental() -%}
        {%- set previous = run_query("select max(_as_of_date) from " ~ this).rows[0][0] -%}
        {%- set current = run_query(
            "select as_of_date from " ~ ref('int_reporting_dates')
        ).rows[0][0] -%}
        {%- if previous is not none and current < previous -%}
            {{ exceptions.raise_compiler_error(
                "as_of_date (" ~ current ~ ") is before the one " ~ this.identifier
                ~ " was built for (" ~ previous ~ "); rebuild with "
                ~ "`retention build --full-refresh`") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#-
    The customers int_customer_months recomputes from their cohort month: the changed customers,
    and those with a purchase after the as_of_date it was last built for (the month_end of its
    last month), such as a first purchase already loaded when as_of_date moves forward.
-#}
{% macro customer_months_to_recompute() -%}
    {{ changed_customers_since_watermark() }}
    union
    select customer_id
    from {{ ref('int_customer_purchase_days') }}
    where purchase_date > coalesce(
        {{ query_constant("select max(month_end) from " ~ this, 'date') }},
        cast('1900-01-01' as date)
    )
{%- endmacro %}

{#-
    An increment must continue the table it extends: refuse (before any change) when as_of_date
    moved back before the last month built or the churn window changed, and say what to do.
-#}
{% macro check_customer_months_increment() -%}
    {%- if execute and is_incremental() -%}
        {%- set previous = run_query(
            "select max(month), min(churn_inactivity_days), max(churn_inactivity_days) from "
            ~ this
        ).rows[0] -%}
        {%- set current = run_query(
            "select as_of_month, churn_inactivity_days from " ~ ref('int_reporting_dates')
        ).rows[0] -%}
        {%- if previous[0] is not none and current[0] < previous[0] -%}
            {{ exceptions.raise_compiler_error(
                "as_of_date (" ~ current[0] ~ ") is before the last month already built ("
                ~ previous[0] ~ "); rebuild with `retention build --full-refresh`") }}
        {%- endif -%}
        {%- if previous[1] is not none
            and (previous[1] != current[1] or previous[2] != current[1]) -%}
            {{ exceptions.raise_compiler_error(
                "churn_inactivity_days changed from " ~ previous[1] ~ " to " ~ current[1]
                ~ " since the last build; rebuild with `retention build --full-refresh`") }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}
