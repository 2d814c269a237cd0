{#-
    Every raw order row, typed, converted to the reporting currency and classified
    (current / superseded / duplicate / quarantined). stg_shop__orders and quarantine.orders are
    filters on this table.

    An order is only trusted when its customer is a current valid customer: otherwise it is
    quarantined as unknown_customer, and passes on a later build once the customer has landed.

    Incremental (macros/incremental.sql): a run re-classifies every raw row of the orders that
    received a new row, and of the orders of customers who received one, since the watermark;
    the rows replace their previous classification (unique key: the raw row).
-#}
-- depends_on: {{ source('shop', 'customers') }}
{{ config(**raw_row_increment()) }}

{%- set landed_columns = [
    'order_id', 'customer_id', 'ordered_at', 'status', 'amount', 'currency', 'updated_at',
] %}

{#- read once: every use below compares with the same constant -#}
{%- set watermark = incremental_watermark() %}

with

{% if is_incremental() %}

affected_orders as (

    {{ keys_to_reclassify(source('shop', 'orders'), 'order_id', 'order_key', watermark) }}

),

{% endif %}

source as {{ inline_cte() if not is_incremental() }} (

    {% if is_incremental() %}
        {{ raw_rows_to_classify(
            source('shop', 'orders'), 'order_key', "select order_key from affected_orders", watermark,
            with_customers=true,
        ) }}
    {% else %}
        select * from {{ source('shop', 'orders') }}
    {% endif %}

),

-- is_key_repeated: the rows classify_rows ranks (a key seen more than once, or none)
{{ flag_repeated_keys('source', 'order_id') }},

customers as (

    select customer_id from {{ ref('stg_shop__customers') }}

),

cross_rates as (

    {{ reporting_cross_rates() }}

),

typed as {{ parsed_cte() }} (

    select
        {{ clean_text('order_id') }} as order_key,
        {{ clean_text('customer_id') }} as customer_key,
        {{ parse_timestamp_utc('ordered_at') }} as ordered_at_utc,
        lower({{ clean_text('status') }}) as order_status,
        {{ parse_decimal('amount', 38, 4) }} as amount_value,
        upper({{ clean_text('currency') }}) as currency_code,
        {{ parse_timestamp_utc('updated_at') }} as updated_at_utc,
        order_id,
        customer_id,
        ordered_at,
        status,
        amount,
        currency,
        updated_at,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        is_key_repeated
    from marked

),

converted as {{ inline_cte() }} (

    select
        typed.*,
        order_fx.rate_to_usd as order_rate_to_usd,
        case
            -- beyond any real order; keeps the conversion below from overflowing
            when abs(typed.amount_value) < 1000000000000
                then {{ convert_to_reporting(
                    'typed.amount_value', 'order_fx.rate_units', 'order_fx.reporting_rate_units'
                ) }}
        end as amount_reporting,
        customers.customer_id is not null as has_known_customer
    from typed
    left join cross_rates as order_fx
        on typed.currency_code = order_fx.currency
        and typed.ordered_at_utc >= order_fx.valid_from
        and typed.ordered_at_utc < order_fx.valid_to
    left join customers
        on typed.customer_key = customers.customer_id

),

validated as {{ inline_cte() }} (

    select
        *,
        case
            when _load_issue is not null then _load_issue
            when order_key is null then 'missing_id'
            when ordered_at_utc is null then 'unparseable_timestamp'
            when {{ clean_text('updated_at') }} is not null and updated_at_utc is null
                then 'unparseable_timestamp'
            when ordered_at_utc > {{ dbt.dateadd('hour', int_var('future_tolerance_hours'), '_loaded_at') }}
                or updated_at_utc > {{ dbt.dateadd('hour', int_var('future_tolerance_hours'), '_loaded_at') }}
                then 'future_timestamp'
            when ordered_at_utc < {{ min_event_date() }} then 'timestamp_before_min_date'
            when order_status is null
                or order_status not in ('completed', 'cancelled', 'refunded', 'pending')
                then 'unknown_status'
            when amount_value is null then 'unparseable_amount'
            when amount_value < 0 then 'negative_amount'
            when order_rate_to_usd is null then 'unknown_currency'
            when amount_value >= 1000000000000 then 'amount_out_of_range'
            when amount_reporting is null then 'unknown_currency'
            -- (at most 10^15: amount_reporting is stored as a decimal(18, 2))
            when amount_reporting > {{ [int_var('max_order_amount') | int, 10 ** 15] | min }}
                then 'amount_out_of_range'
            when not has_known_customer then 'unknown_customer'
        end as reject_reason
    from converted

),

classified as (

    {{ classify_rows(
        relation='validated',
        key_columns=['order_key'],
        raw_columns=landed_columns,
        version_at='updated_at_utc',
    ) }}

),

final as (

    -- amounts as 64-bit decimals (macros/arithmetic.sql): only a quarantined amount can be out
    -- of their range; it becomes null, and its landed text stays in `amount`. The landed text is
    -- kept for quarantined rows only (quarantine.orders shows it); every row's is in raw.orders
    -- under the same (_source_file, _source_row, _loaded_at); writing it twice cost a quarter of
    -- the model.
    select
        order_key,
        customer_key,
        ordered_at_utc,
        order_status,
        {{ narrow_decimal('amount_value', 18, 4) }} as amount_value,
        currency_code,
        updated_at_utc,
        {%- for column in landed_columns %}
            case when row_disposition = 'quarantined' then {{ column }} end as {{ column }},
        {%- endfor %}
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        order_rate_to_usd,
        {{ narrow_decimal('amount_reporting', 18, 2) }} as amount_reporting,
        has_known_customer,
        reject_reason,
        copy_number,
        version_rank,
        row_disposition,
        {{ loaded_through() }} as _loaded_through
    from classified

)

select * from final
