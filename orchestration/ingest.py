"""Landing files and the loader: landing/<entity>/ -> raw.<entity>."""

import dagster as dg

from retention.config import ENTITIES
from retention.load import LoadErrors, load

from .dbt import RETRY
from .locking import data_directory

landing_files = [
    dg.AssetSpec(
        ["landing", entity],
        description=f"Files dropped into $RETENTION_DATA_DIR/landing/{entity}/ (CSV or Parquet).",
        group_name="landing",
    )
    for entity in ENTITIES
]


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            ["raw", entity],
            deps=[["landing", entity]],
            description=f"Every landed {entity} row as text, with lineage (append-only).",
            group_name="raw",
        )
        for entity in ENTITIES
    ],
    retry_policy=RETRY,
)
def raw_tables(context: dg.AssetExecutionContext):
    """Load new landing files; a file already loaded (same content) is skipped."""
    try:
        with data_directory(context) as paths:
            summary = load(paths, progress=context.log.info)
    except LoadErrors as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    for entity in ENTITIES:
        files = [f for f in summary.loaded if f.entity == entity]
        yield dg.MaterializeResult(
            asset_key=["raw", entity],
            metadata={
                "new_rows": summary.rows(entity),
                "new_files": dg.MetadataValue.json([f.source_file for f in files]),
                "skipped_files": len([f for f in summary.skipped if f.entity == entity]),
            },
        )
