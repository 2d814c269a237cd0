{#-
    Every raw customer row, typed and classified (current / superseded / duplicate / quarantined).
    stg_shop__customers and quarantine.customers are filters on this table; the reconciliation
    test checks that it holds exactly the rows of raw.customers.

    Incremental (macros/incremental.sql): a run re-classifies every raw row of the customers that
    received a new row since the watermark; the rows replace their previous classification
    (unique key: the raw row).
-#}
{{ config(**raw_row_increment()) }}

{{ check_increment_columns(['_loaded_through']) }}
{#- read once: every use below compares with the same constant -#}
{%- set watermark = incremental_watermark() %}

with

{% if is_incremental() %}

new_customers as (

    select {{ clean_text('customer_id') }} as customer_key
    from {{ source('shop', 'customers') }}
    where _loaded_at > {{ watermark }}

),

{% endif %}

source as {{ inline_cte() if not is_incremental() }} (

    {% if is_incremental() %}
        {{ raw_rows_to_classify(
            source('shop', 'customers'), 'customer_key',
            "select customer_key from new_customers", watermark
        ) }}
    {% else %}
        select * from {{ source('shop', 'customers') }}
    {% endif %}

),

-- is_key_repeated: the rows classify_rows ranks (a key seen more than once, or none)
{{ flag_repeated_keys('source', 'customer_id') }},

typed as {{ parsed_cte() }} (

    select
        {{ clean_text('customer_id') }} as customer_key,
        lower({{ clean_text('email') }}) as email_address,
        {{ parse_timestamp_utc('signup_at') }} as signup_at_utc,
        upper({{ clean_text('country') }}) as country_code,
        {{ clean_text('acquisition_channel') }} as acquisition_channel_raw,
        {{ parse_timestamp_utc('updated_at') }} as updated_at_utc,
        customer_id,
        email,
        signup_at,
        country,
        acquisition_channel,
        updated_at,
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
        *,
        case
            when _load_issue is not null then _load_issue
            when customer_key is null then 'missing_id'
            when {{ clean_text('signup_at') }} is not null and signup_at_utc is null
                then 'unparseable_timestamp'
            when {{ clean_text('updated_at') }} is not null and updated_at_utc is null
                then 'unparseable_timestamp'
            when signup_at_utc > {{ dbt.dateadd('hour', int_var('future_tolerance_hours'), '_loaded_at') }}
                or updated_at_utc > {{ dbt.dateadd('hour', int_var('future_tolerance_hours'), '_loaded_at') }}
                then 'future_timestamp'
            when signup_at_utc < {{ min_event_date() }} then 'timestamp_before_min_date'
        end as reject_reason
    from typed

),

classified as (

    {{ classify_rows(
        relation='validated',
        key_columns=['customer_key'],
        raw_columns=['customer_id', 'email', 'signup_at', 'country', 'acquisition_channel', 'updated_at'],
        version_at='updated_at_utc',
    ) }}

),

final as (

    select
        customer_key,
        email_address,
        signup_at_utc,
        country_code,
        acquisition_channel_raw,
        updated_at_utc,
        customer_id,
        email,
        signup_at,
        country,
        acquisition_channel,
        updated_at,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        reject_reason,
        copy_number,
        version_rank,
        row_disposition,
        {{ loaded_through(['customers']) }} as _loaded_through
    from classified

)

select * from final
