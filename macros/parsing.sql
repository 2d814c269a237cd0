{#-
    Parsing helpers for the staging layer: raw columns are text, exactly as landed.
    Each macro returns NULL when the text cannot be parsed, never an error, so staging can route
    the row to quarantine with a reason instead of failing the build.

    What parses is decided by one grammar per kind (a regular expression, the same on every
    engine) before the engine's cast runs: the engines' own parsers accept different extras
    (DuckDB reads "7.5" as the integer 8 and "1_000" as 1000, PostgreSQL raises instead of
    returning NULL), and the same landing file must give the same staging rows everywhere.
    The patterns avoid backslashes, which Spark string literals would treat as escapes.
-#}

{#- An ISO-8601 date or date-time: YYYY-MM-DD[(T| )hh:mm[:ss[.fraction]]][Z|+hh[[:]mm]]. -#}
{% macro iso_timestamp_pattern() -%}
    ^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?(Z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?$
{%- endmacro %}


{#- A plain decimal number with at most max_integer_digits before the point ("12.50", "-3", ".5"). -#}
{% macro decimal_pattern(max_integer_digits) -%}
    ^[+-]?([0-9]{1,{{ max_integer_digits }}}([.][0-9]*)?|[.][0-9]+)$
{%- endmacro %}


{#- True when the text matches the regular expression (a pattern without quotes). -#}
{% macro matches_pattern(expr, pattern) -%}
    {{ return(adapter.dispatch('matches_pattern', 'retention')(expr, pattern)) }}
{%- endmacro %}

{% macro default__matches_pattern(expr, pattern) -%}
    ({{ expr }} ~ '{{ pattern }}')
{%- endmacro %}

{% macro duckdb__matches_pattern(expr, pattern) -%}
    regexp_matches({{ expr }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__matches_pattern(expr, pattern) -%}
    {#-
        Java's "$" also matches before a line break that ends the text ("12.50" + newline), and
        Spark's cast then drops the break: rows DuckDB and PostgreSQL quarantine were valid
        here. "\z" (written "\\z" in a Spark string literal) is the true end.
    -#}
    {%- if pattern.endswith('$') -%}
        {%- set pattern = pattern[:-1] ~ '\\\\z' -%}
    {%- endif -%}
    ({{ expr }} rlike '{{ pattern }}')
{%- endmacro %}


{#-
    cast() that gives NULL instead of an error where the engine has such a cast. Use it only on
    text that matched the grammar (engines without try_cast raise on anything else).
-#}
{% macro try_cast(expr, type) -%}
    {{ return(adapter.dispatch('try_cast', 'retention')(expr, type)) }}
{%- endmacro %}

{% macro default__try_cast(expr, type) -%}
    {{ dbt.safe_cast(expr, type) }}
{%- endmacro %}

{% macro duckdb__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}

{% macro spark__try_cast(expr, type) -%}
    try_cast({{ expr }} as {{ type }})
{%- endmacro %}


{#-
    Blank or whitespace-only text is missing. The spaces trimmed are Unicode's space separators
    (category Zs: the space, the no-break space U+00A0 that spreadsheets export, U+1680,
    U+2000-U+200A, U+202F, U+205F, U+3000), what DuckDB's trim() strips; PostgreSQL's and
    Spark's strip only the ASCII space, so they are given the set. Tabs and line breaks are kept
    on every engine.
-#}
{% macro clean_text(expr) -%}
    nullif({{ trim_spaces(expr) }}, '')
{%- endmacro %}

{% macro trim_spaces(expr) -%}
    {{ return(adapter.dispatch('trim_spaces', 'retention')(expr)) }}
{%- endmacro %}

{% macro unicode_spaces() -%}
    {{ return(' \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000') }}
{%- endmacro %}

{% macro default__trim_spaces(expr) -%}
    trim(both '{{ unicode_spaces() }}' from {{ expr }})
{%- endmacro %}

{% macro duckdb__trim_spaces(expr) -%}
    trim({{ expr }})
{%- endmacro %}


{#-
    Text in a sort that breaks ties (which of two versions landed last, which order of a day
    is numbered first, the win-back rank) compares by bytes on every engine, as DuckDB and Spark
    compare text. PostgreSQL compares by the database's collation, and under a language-aware
    one (en_US) 'Orders_b.csv' sorts before 'orders_a.csv'.
-#}
{% macro byte_order(expr) -%}
    {{ return(adapter.dispatch('byte_order', 'retention')(expr)) }}
{%- endmacro %}

{% macro default__byte_order(expr) -%}
    {{ expr }}
{%- endmacro %}

{% macro postgres__byte_order(expr) -%}
    {{ expr }} collate "C"
{%- endmacro %}


{#-
    ISO-8601 text to a UTC timestamp (without time zone). An offset (+02:00, Z) is honoured;
    naive text is read as UTC. Text outside the grammar and impossible values (2024-02-30) give
    NULL.
-#}
{% macro parse_timestamp_utc(expr) -%}
    {%- set text = clean_text(expr) -%}
    case
        when {{ matches_pattern(text, iso_timestamp_pattern()) }}
            then {{ adapter.dispatch('cast_iso_timestamp_utc', 'retention')(text) }}
    end
{%- endmacro %}

{#- The cast itself, for text that matched iso_timestamp_pattern(). -#}
{% macro default__cast_iso_timestamp_utc(text) -%}
    cast({{ retention.try_cast(text, api.Column.translate_type('timestamp')) }} as timestamp)
{%- endmacro %}

{% macro duckdb__cast_iso_timestamp_utc(text) -%}
    {#-
        Text with a numeric offset (a + or - after the date) is read as timestamptz and
        converted to UTC (the profile sets TimeZone=UTC); naive text and a Z suffix are UTC
        already and take the plain timestamp cast, twice as fast over millions of rows.
    -#}
    case
        when contains(substr({{ text }}, 11), '+') or contains(substr({{ text }}, 11), '-')
            then (try_cast({{ text }} as timestamptz) at time zone 'UTC')
        else try_cast({{ text }} as timestamp)
    end
{%- endmacro %}

{% macro postgres__cast_iso_timestamp_utc(text) -%}
    {#-
        PostgreSQL raises on an impossible day (2024-02-30), so the day is checked against the
        length of the month first (nested cases keep that order). With an offset the text is a
        timestamptz converted to UTC; without one it is read as UTC wall time, whatever the
        session time zone. More than 6 fraction digits are cut (PostgreSQL would round).
    -#}
    case
        when cast(substr({{ text }}, 9, 2) as integer) <= extract(day from
            make_date(cast(substr({{ text }}, 1, 4) as integer), cast(substr({{ text }}, 6, 2) as integer), 1)
            + interval '1 month' - interval '1 day')
            then case
                when substr({{ text }}, 11) ~ '[Z+-]'
                    then cast(regexp_replace({{ text }}, '([.][0-9]{6})[0-9]+', '\1') as timestamptz)
                    at time zone 'UTC'
                else cast(regexp_replace({{ text }}, '([.][0-9]{6})[0-9]+', '\1') as timestamp)
            end
    end
{%- endmacro %}

{% macro spark__cast_iso_timestamp_utc(text) -%}
    {#-
        The session time zone is UTC: naive text is UTC, an offset is applied. Spark reads no
        zone right after hh:mm ("2024-01-05T10:00Z" was NULL, and its row quarantined on Spark
        only): the seconds are written out first.
    -#}
    try_cast(
        regexp_replace(
            {{ text }},
            '^([0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2})([Z+-])',
            '$1:00$2'
        )
        as timestamp
    )
{%- endmacro %}


{#- Decimal text ("12.50", " 7 ") to a number; anything else gives NULL. -#}
{% macro parse_decimal(expr, precision=18, scale=4) -%}
    {%- set text = clean_text(expr) -%}
    case
        when {{ matches_pattern(text, decimal_pattern(precision - scale)) }}
            then {{ adapter.dispatch('cast_decimal_text', 'retention')(text, precision, scale) }}
    end
{%- endmacro %}

{#- The cast itself, for text that matched decimal_pattern(). -#}
{% macro default__cast_decimal_text(text, precision, scale) -%}
    cast({{ text }} as decimal({{ precision }}, {{ scale }}))
{%- endmacro %}

{% macro duckdb__cast_decimal_text(text, precision, scale) -%}
    {#-
        DuckDB parses text into a decimal of up to 18 digits (a 64-bit integer) some thirty
        times faster than into a wider one (128-bit): try the narrow type first, and the wide
        one only for the text the narrow one rejects.
    -#}
    {%- if precision > 18 -%}
        coalesce(
            cast(try_cast({{ text }} as decimal(18, {{ scale }})) as decimal({{ precision }}, {{ scale }})),
            try_cast({{ text }} as decimal({{ precision }}, {{ scale }}))
        )
    {%- else -%}
        try_cast({{ text }} as decimal({{ precision }}, {{ scale }}))
    {%- endif -%}
{%- endmacro %}


{#-
    Whole-number text ("7", "-2", and "10.0" as pandas writes a column of integers with a gap)
    to an integer; "7.5", "1e2" or "x" give NULL. Through a decimal: PostgreSQL casts no
    fraction to an integer.
-#}
{% macro parse_integer(expr) -%}
    {%- set text = clean_text(expr) -%}
    case
        when {{ matches_pattern(text, '^[+-]?[0-9]{1,9}([.]0+)?$') }}
            then cast(cast({{ text }} as {{ dbt.type_numeric() }}) as {{ dbt.type_int() }})
    end
{%- endmacro %}


{#-
    Text to a date: "2024-03", or any timestamp text of midnight on the first of a month
    ("2024-03-01", "2024-03-01 00:00:00.000000Z" as a Parquet timestamp column is written), the
    first of the month. Any other moment is NULL, not its month: a row per day (or per campaign)
    would otherwise be taken as versions of one month's spend.

    A month is a page of the calendar, not an instant: with an offset it is read on the clock
    the text was written in. A Parquet column of local timestamps (Europe/Berlin) writes
    February as "2025-02-01 00:00:00.000000+0100", which is 23:00 on 31 January in UTC: the
    row was quarantined as an unparseable timestamp. The text must still be a valid timestamp,
    offset included.
-#}
{% macro parse_month(expr) -%}
    {%- set trimmed = trim_spaces(expr) -%}
    {%- set text = "case when length(" ~ trimmed ~ ") = 7 then " ~ trimmed ~ " || '-01' else "
        ~ expr ~ " end" -%}
    {%- set wall_clock = parse_timestamp_utc(without_utc_offset(text)) -%}
    case
        when {{ parse_timestamp_utc(text) }} is not null
            and {{ wall_clock }} = {{ dbt.date_trunc('month', wall_clock) }}
            then cast({{ wall_clock }} as date)
    end
{%- endmacro %}

{#-
    Timestamp text without the offset that ends it ("Z", "+01", "-0530", "+05:30"), which can
    only follow the time (a date alone ends in "-01" too).
-#}
{% macro without_utc_offset(text) -%}
    regexp_replace(
        {{ text }},
        '^(.*:[0-9]{2}([.][0-9]+)?)(Z|[+-][0-9]{2}(:?[0-9]{2})?)$',
        '{{ adapter.dispatch("regex_group_reference", "retention")(1) }}'
    )
{%- endmacro %}

{#- How a regexp_replace replacement refers to a group: \1 (RE2, PostgreSQL), $1 (Java). -#}
{% macro default__regex_group_reference(number) -%}
    \{{ number }}
{%- endmacro %}

{% macro spark__regex_group_reference(number) -%}
    ${{ number }}
{%- endmacro %}
