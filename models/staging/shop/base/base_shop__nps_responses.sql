{#-
    Every raw NPS response row, typed and classified. A response must belong to a current valid
    customer and score an integer from 0 to 10.

    Incremental like base_shop__orders: a run re-classifies every raw row of the responses that
    received a new row, and of the responses of customers who received one (a response waiting
    for its customer passes once the customer has landed), since the watermark; the rows replace
    their previous classification (unique key: the raw row).
-#}
-- depends_on: {{ source('shop', 'customers') }}
{{ config(**raw_row_increment()) }}

{{ check_increment_columns(['_loaded_through']) }}
{#- read once: every use below compares with the same constant -#}
{%- set watermark = incremental_watermark() %}

with

{% if is_incremental() %}

affected_responses as (

    {{ keys_to_reclassify(source('shop', 'nps_responses'), 'response_id', 'response_key', watermark) }}

),

{% endif %}

source as {{ inline_cte() if not is_incremental() }} (

    {% if is_incremental() %}
        {{ raw_rows_to_classify(
            source('shop', 'nps_responses'), 'response_key',
            "select response_key from affected_responses", watermark, with_customers=true,
        ) }}
    {% else %}
        select * from {{ source('shop', 'nps_responses') }}
    {% endif %}

),

-- is_key_repeated: the rows classify_rows ranks (a key seen more than once, or none)
{{ flag_repeated_keys('source', 'response_id') }},

customers as (

    select customer_id from {{ ref('stg_shop__customers') }}

),

typed as {{ parsed_cte() }} (

    select
        {{ clean_text('response_id') }} as response_key,
        {{ clean_text('customer_id') }} as customer_key,
        {{ parse_timestamp_utc('responded_at') }} as responded_at_utc,
        {{ parse_integer('score') }} as score_value,
        response_id,
        customer_id,
        responded_at,
        score,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        is_key_repeated
    from marked

),

validated as {{ inline_cte() }} (

    select
        typed.*,
        case
            when typed._load_issue is not null then typed._load_issue
            when typed.response_key is null then 'missing_id'
            when typed.responded_at_utc is null then 'unparseable_timestamp'
            when typed.responded_at_utc
                > {{ dbt.dateadd('hour', int_var('future_tolerance_hours'), 'typed._loaded_at') }}
                then 'future_timestamp'
            when typed.responded_at_utc < {{ min_event_date() }} then 'timestamp_before_min_date'
            when typed.score_value is null then 'unparseable_score'
            when typed.score_value < 0
                or typed.score_value > 10
                then 'score_out_of_range'
            when customers.customer_id is null then 'unknown_customer'
        end as reject_reason
    from typed
    left join customers
        on typed.customer_key = customers.customer_id

),

classified as (

    {{ classify_rows(
        relation='validated',
        key_columns=['response_key'],
        raw_columns=['response_id', 'customer_id', 'responded_at', 'score'],
        version_at='_loaded_at',
    ) }}

),

final as (

    select
        response_key,
        customer_key,
        responded_at_utc,
        score_value,
        response_id,
        customer_id,
        responded_at,
        score,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        reject_reason,
        copy_number,
        version_rank,
        row_disposition,
        {{ loaded_through(['nps_responses', 'customers']) }} as _loaded_through
    from classified

)

select * from final
