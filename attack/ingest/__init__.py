"""Ingest caption lists and training images into a store (the whole ingest: attack.ingest.run).

formats.py reads files (parquet, CSV, JSONL, text), captions.py recognises a caption list's
layout and checks its rows, images.py finds and decodes training images, shards.py streams
img2dataset's webdataset shards, run.py checks everything and then writes in one transaction.
"""
from attack.ingest.captions import open_caption_stream, parse_caption_file
from attack.ingest.formats import FORMATS, read_table
from attack.ingest.run import IngestReport, apply_ingest, ingest, ingest_unless_present, prepare_ingest

__all__ = ["FORMATS", "IngestReport", "apply_ingest", "ingest", "ingest_unless_present", "open_caption_stream",
           "parse_caption_file", "prepare_ingest", "read_table"]
