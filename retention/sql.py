"""SQL text for values that cannot be bound as parameters (file paths in COPY, names as keys)."""


def sql_string(value: object) -> str:
    """``value`` as a single-quoted SQL string literal: ``it's`` becomes ``'it''s'``."""
    return "'" + str(value).replace("'", "''") + "'"
