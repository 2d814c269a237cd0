{#-
    Every raw marketing spend row, typed, converted to the reporting currency and classified.
    The key is (month, channel, spend_type): a later row for the same key replaces the earlier
    one (a corrected spend file), exact copies are duplicates. Rows of one file that give one key
    different amounts (a row per campaign or per day) are quarantined as
    conflicting_rows_in_file: neither is a correction of the other, and keeping the last would
    understate the spend without a word.
-#}
with

source as (

    select * from {{ source('shop', 'marketing_spend') }}

),

channel_groups as (

    select * from {{ ref('channel_groups') }}

),

cross_rates as (

    {{ reporting_cross_rates() }}

),

typed as {{ parsed_cte() }} (

    select
        {{ parse_month('month') }} as spend_month,
        lower({{ clean_text('channel') }}) as channel_key,
        lower({{ clean_text('spend_type') }}) as spend_type_key,
        {{ parse_decimal('amount', 38, 4) }} as amount_value,
        upper({{ clean_text('currency') }}) as currency_code,
        month,
        channel,
        spend_type,
        amount,
        currency,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at
    from source

),

converted as (

    select
        typed.*,
        coalesce(channel_groups.channel_group, 'other') as channel_group,
        case
            -- beyond any real order; keeps the conversion below from overflowing
            when abs(typed.amount_value) < 1000000000000
                then {{ convert_to_reporting(
                    'typed.amount_value', 'spend_fx.rate_units', 'spend_fx.reporting_rate_units'
                ) }}
        end as amount_reporting
    from typed
    left join channel_groups
        on typed.channel_key = channel_groups.channel_raw
    left join cross_rates as spend_fx
        on typed.currency_code = spend_fx.currency
        and typed.spend_month >= spend_fx.valid_from
        and typed.spend_month < spend_fx.valid_to

),

checked as (

    select
        *,
        case
            when _load_issue is not null then _load_issue
            when channel_key is null then 'missing_id'
            when spend_month is null then 'unparseable_timestamp'
            when spend_month > cast(_loaded_at as date) then 'future_timestamp'
            when spend_month < {{ min_event_date() }} then 'timestamp_before_min_date'
            when spend_type_key is null or spend_type_key not in ('acquisition', 'retention')
                then 'unknown_spend_type'
            when amount_value is null then 'unparseable_amount'
            when amount_value < 0 then 'negative_amount'
            when amount_value >= 1000000000000 then 'amount_out_of_range'
            when amount_reporting is null then 'unknown_currency'
        end as row_reason
    from converted

),

-- the amount and currency of the rows valid on their own (rows rejected for a reason of their
-- own take no part in the comparison below)
comparable as (

    select
        *,
        case when row_reason is null then amount_value end as valid_amount,
        case when row_reason is null then currency_code end as valid_currency
    from checked

),

-- rows valid on their own that give their key another amount than a sibling in the same file
validated as (

    select
        spend_month,
        channel_key,
        spend_type_key,
        amount_value,
        currency_code,
        month,
        channel,
        spend_type,
        amount,
        currency,
        _extra,
        _load_issue,
        _source_file,
        _source_row,
        _loaded_at,
        channel_group,
        amount_reporting,
        case
            when row_reason is not null then row_reason
            when min(valid_amount) over same_key_in_file < max(valid_amount) over same_key_in_file
                or min(valid_currency) over same_key_in_file
                < max(valid_currency) over same_key_in_file
                then 'conflicting_rows_in_file'
        end as reject_reason
    from comparable
    window same_key_in_file as (
        partition by spend_month, channel_key, spend_type_key, _source_file, _loaded_at
    )

),

classified as (

    {{ classify_rows(
        relation='validated',
        key_columns=['spend_month', 'channel_key', 'spend_type_key'],
        raw_columns=['month', 'channel', 'spend_type', 'amount', 'currency'],
        version_at='_loaded_at',
    ) }}

)

select * from classified
