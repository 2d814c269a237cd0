-- parse_timestamp_utc on every target: offsets honoured, naive text read as UTC, impossible or
-- unparseable text gives null (expected ''). Returns the cases that come out wrong.
with

cases as (

    select
        '2025-12-31T21:51:10Z' as raw_text,
        '2025-12-31 21:51:10' as expected_text
    union all
    select
        '2025-12-31T21:51:10+02:00' as raw_text,
        '2025-12-31 19:51:10' as expected_text
    union all
    select
        ' 2025-12-31 16:58:43 ' as raw_text,
        '2025-12-31 16:58:43' as expected_text
    union all
    select
        '2025-12-31T16:58:43.250-05:30' as raw_text,
        '2025-12-31 22:28:43.250' as expected_text
    union all
    select
        '2025-12-31' as raw_text,
        '2025-12-31 00:00:00' as expected_text
    union all
    select
        '2024-02-30 10:00:00' as raw_text,
        '' as expected_text
    union all
    select
        '   ' as raw_text,
        '' as expected_text
    union all
    select
        'yesterday' as raw_text,
        '' as expected_text

),

parsed as (

    select
        raw_text,
        expected_text,
        {{ parse_timestamp_utc('raw_text') }} as parsed_at,
        cast(nullif(expected_text, '') as timestamp) as expected_at
    from cases

)

select *
from parsed
where
    (parsed_at is null and expected_at is not null)
    or (parsed_at is not null and expected_at is null)
    or parsed_at != expected_at
