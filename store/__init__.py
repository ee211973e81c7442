"""Verbatim's evidence store: SQLite (WAL) + content-addressed PNG images.

    from store import Store, StoreError
    with Store.open("data/demo") as s:
        page = s.page(PageQuery(order_by="dcs", human_label="unlabelled"))
"""
from .check import CheckReport, check_store
from .errors import (
    DamagedImageError,
    ExportError,
    IngestError,
    Interrupted,
    LabelConflictError,
    LabelError,
    MaskError,
    MissingImageError,
    NotFoundError,
    NotYourLabelError,
    OutputError,
    ReadOnlyStoreError,
    SchemaError,
    StoreError,
)
from .gold import GoldAnswer, GoldError, GoldImport, GoldItem, ReviewerGold, ServedGold
from .model_labels import ModelLabel
from .records import (
    AutoLabel,
    AutoLabelState,
    CandidateDup,
    Caption,
    CaptionRef,
    CaptionReviews,
    CaptionRow,
    Generation,
    GenerationRef,
    LabelEntry,
    Lease,
    Mask,
    Neighbour,
    Page,
    PageQuery,
    PageRow,
    ReviewerActivity,
    Run,
    RunHandle,
    RunLabelCount,
    ScoreRank,
    SearchHit,
    TrainingImage,
    TrainingSetVersion,
)
from .schema import HUMAN_LABELS, REFERENCE_LABELS, SCHEMA_VERSION
from .store import Store
from .version import __version__

__all__ = [
    "Store", "StoreError", "DamagedImageError", "MissingImageError", "check_store", "CheckReport", "SchemaError", "NotFoundError", "LabelError", "IngestError", "ExportError", "MaskError",
    "OutputError", "ReadOnlyStoreError", "Interrupted", "LabelConflictError", "NotYourLabelError",
    "AutoLabel", "AutoLabelState", "CandidateDup", "Caption", "CaptionRef", "CaptionRow", "Generation",
    "GenerationRef", "LabelEntry", "Lease", "Mask", "Neighbour", "Page", "PageQuery", "PageRow", "ReviewerActivity",
    "Run",
    "RunHandle", "RunLabelCount", "ScoreRank", "SearchHit", "TrainingImage", "TrainingSetVersion", "CaptionReviews",
    "ModelLabel", "GoldAnswer", "GoldError", "GoldImport", "GoldItem", "ReviewerGold", "ServedGold",
    "HUMAN_LABELS", "REFERENCE_LABELS", "SCHEMA_VERSION", "__version__",
]
