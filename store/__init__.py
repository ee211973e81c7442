"""Verbatim's evidence store: SQLite (WAL) + content-addressed PNG images.

    from store import Store, StoreError
    with Store.open("data/demo") as s:
        page = s.page(PageQuery(order_by="dcs", human_label="unlabelled"))
"""
from .errors import (
    ExportError, IngestError, LabelError, MaskError, NotFoundError, SchemaError, StoreError,
)
from .records import (
    AutoLabel, Caption, CaptionRow, Generation, LabelEntry, Mask, Neighbour, Page, PageQuery,
    PageRow, Run, SearchHit, TrainingImage,
)
from .schema import HUMAN_LABELS, REFERENCE_LABELS, SCHEMA_VERSION
from .store import Store
from .version import __version__

__all__ = [
    "Store", "StoreError", "SchemaError", "NotFoundError", "LabelError", "IngestError", "ExportError", "MaskError",
    "AutoLabel", "Caption", "CaptionRow", "Generation", "LabelEntry", "Mask", "Neighbour", "Page",
    "PageQuery", "PageRow", "Run", "SearchHit", "TrainingImage",
    "HUMAN_LABELS", "REFERENCE_LABELS", "SCHEMA_VERSION", "__version__",
]
