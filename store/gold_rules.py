"""Gold candidates' rules and records, free of SQL: the result records, a gold file's parser,
the Wilson interval, the per-reviewer gap and order that decide which gold candidate is due, and
one reviewer's summary. The Store methods that use them are in store/gold.py."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from .canon import unicode_text
from .errors import StoreError
from .schema import HUMAN_LABELS

GOLD_LABELS = tuple(label for label in HUMAN_LABELS if label != "skip")   # a skip is no decision
# NeMo writes VM/TM; the paper's lists write MV/TV/RV/N (as attack/ingest/captions.py reads them)
LABEL_ALIASES = {"VM": "MV", "TM": "TV"}
ID_COLUMNS = ("caption_id",)
TEXT_COLUMNS = ("caption", "text")
LABEL_COLUMNS = ("label", "gold", "overfit_type", "reference_label")
FILE_FORMATS = (".csv", ".jsonl")
DEFAULT_MIN_ACCURACY = 0.8
DEFAULT_MIN_ANSWERS = 5
MAX_RATE = 0.5
IDLE_GAP_SECONDS = 600.0        # a longer pause between two decisions is a break, not time spent on one
MAX_FILE_BYTES = 256 * 2**20


class GoldError(StoreError):
    """Bad gold input (a file, a label, a caption id, a rate): nothing is written."""


# -- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GoldItem:
    caption_id: int
    label: str
    source: str
    created_at: str
    answers: int = 0                # gold answers recorded on it


@dataclass(frozen=True)
class GoldImport:
    """What an add/replace of gold did. skipped: (caption id or text, why) of rows left out."""
    source: str
    added: int
    replaced: int                   # a gold candidate whose label changed
    unchanged: int
    skipped: tuple = ()


@dataclass(frozen=True)
class GoldRemoval:
    caption_id: int
    label: str
    answers_removed: int


@dataclass(frozen=True)
class GoldAnswer:
    id: int
    caption_id: int
    reviewer: str
    label: str
    created_at: str
    seconds: Optional[float]
    gold_label: str

    @property
    def correct(self) -> bool:
        return self.label == self.gold_label


@dataclass(frozen=True)
class ServedGold:
    """The gold candidate served to a reviewer and not answered yet."""
    reviewer: str
    caption_id: int
    served_at: float                # unix seconds


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class ConfusionCell:
    gold: str
    answered: str
    n: int


@dataclass(frozen=True)
class ReviewerGold:
    """One reviewer on gold. answers: decisive answers (a skip is counted in ``skipped`` only);
    accuracy / ci: None without answers. median_seconds_per_label: the median gap between the
    reviewer's consecutive decisions (audit labels and gold answers, from their timestamps; gaps over
    IDLE_GAP_SECONDS are breaks and left out). median_seconds_gold: the median of their gold answers'
    measured seconds (served to answered). flagged: accuracy under min_accuracy with at least
    min_answers answers."""
    reviewer: str
    answers: int
    correct: int
    skipped: int
    accuracy: Optional[float]
    ci: Optional[Interval]
    confusion: tuple                # of ConfusionCell, by (gold, answered)
    median_seconds_per_label: Optional[float]
    median_seconds_gold: Optional[float]
    flagged: bool


# -- pure helpers -------------------------------------------------------------------------------
def wilson_interval(correct: int, n: int, z: float = 1.96) -> Optional[Interval]:
    """Wilson score interval of a proportion (95% with z=1.96); None for n = 0. Unlike the normal
    approximation it stays inside [0, 1] and is sensible at 0 or n successes with few answers."""
    if n <= 0:
        return None
    if not 0 <= correct <= n:
        raise GoldError(f"wilson interval: expected 0 <= correct <= n, got {correct} of {n}")
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Interval(max(0.0, centre - half), min(1.0, centre + half))


def check_rate(rate: object) -> float:
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= MAX_RATE:
        raise GoldError(f"gold rate: expected a number from 0 to {MAX_RATE}, got {rate!r}")
    return float(rate)


def _unit(*parts: object) -> float:
    """A number in [0, 1) from a hash of parts: deterministic, the same on every machine."""
    digest = hashlib.sha256("\0".join(map(str, parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def gold_gap(reviewer: str, answered: int, rate: float) -> int:
    """How many audit labels the reviewer gives before their next gold candidate (after ``answered``
    gold answers): uniform on 1 .. 2/rate - 3, so one candidate in 1/rate shown is gold on average
    (mean gap 1/rate - 1) and the spacing cannot be counted on."""
    rate = check_rate(rate)
    if rate == 0:
        raise GoldError("gold gap: expected a rate above 0, got 0 (no gold is mixed in)")
    top = max(1, round(2 / rate) - 3)
    return 1 + int(_unit("gap", reviewer, answered) * top)


def gold_order(reviewer: str, caption_ids: Sequence[int]) -> list[int]:
    """The order in which this reviewer meets the gold candidates: hashed per reviewer, so two
    reviewers do not see them in one order."""
    return sorted(caption_ids, key=lambda c: (_unit("order", reviewer, c), c))


def normalise_label(value: object, where: str) -> Optional[str]:
    """A gold label from a file cell: MV/TV/RV/N (VM/TM read as MV/TV), an FP:* label; None when empty."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise GoldError(f"{where}: expected a label ({', '.join(GOLD_LABELS)}), got {value!r}")
    text = value.strip()
    if not text:
        return None
    upper = text.upper()
    label = LABEL_ALIASES.get(upper, upper if upper in ("MV", "TV", "RV", "N") else text)
    if label not in GOLD_LABELS:
        raise GoldError(f"{where}: expected one of {', '.join(GOLD_LABELS)} (or VM, TM; empty to leave the row out), "
                        f"got {value!r}")
    return label


@dataclass(frozen=True)
class GoldRow:
    """One row of a gold file: a caption by id or by text, and its label (None: left out)."""
    where: str                      # "FILE, row N" for messages
    caption_id: Optional[int]
    text: Optional[str]
    label: Optional[str]


def _first(record: dict, names: Sequence[str]) -> Optional[str]:
    return next((n for n in names if n in record), None)


def _row(record: dict, where: str) -> GoldRow:
    id_col, text_col = _first(record, ID_COLUMNS), _first(record, TEXT_COLUMNS)
    label_col = _first(record, LABEL_COLUMNS)
    if label_col is None:
        raise GoldError(f"{where}: expected a label column ({', '.join(LABEL_COLUMNS)}), got columns "
                        f"{', '.join(map(repr, record)) or 'none'}")
    if id_col is None and text_col is None:
        raise GoldError(f"{where}: expected a caption_id or caption column, got columns "
                        f"{', '.join(map(repr, record)) or 'none'}")
    cid = None
    raw_id = record.get(id_col) if id_col else None
    if raw_id not in (None, ""):
        try:
            if isinstance(raw_id, (bool, float)) or int(raw_id) < 1:
                raise ValueError
            cid = int(raw_id)
        except (TypeError, ValueError):
            raise GoldError(f"{where}, column {id_col!r}: expected a positive integer caption id, "
                            f"got {raw_id!r}") from None
    text = record.get(text_col) if text_col else None
    if text is not None and not isinstance(text, str):
        raise GoldError(f"{where}, column {text_col!r}: expected caption text, got {text!r}")
    if cid is None and not text:
        raise GoldError(f"{where}: expected a caption id or caption text, got neither")
    label = normalise_label(record.get(label_col), f"{where}, column {label_col!r}")
    return GoldRow(where, cid, unicode_text(text, f"{where} caption") if text else None, label)


def parse_gold_file(path: Union[str, Path]) -> list[GoldRow]:
    """Rows of a CSV (with a header) or JSONL gold file; each row names a caption by ``caption_id``
    or by its text (``caption`` / ``text``) and gives a label (``label``, ``gold``, or the paper's
    ``overfit_type``, or ``reference_label``). Raises GoldError naming the file, row and column."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise GoldError(f"{path}: expected a {' or '.join(FILE_FORMATS)} file, got {path.suffix or 'no extension'}")
    if not path.is_file():
        raise GoldError(f"{path}: expected an existing file, got {'a folder' if path.is_dir() else 'none'}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise GoldError(f"{path}: expected at most {MAX_FILE_BYTES // 2**20} MiB, got {path.stat().st_size:,} bytes")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise GoldError(f"{path}: expected UTF-8 text, got an undecodable byte at offset {e.start}") from None
    rows = []
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames:
            raise GoldError(f"{path}: expected a header line (caption_id or caption, and label), got an empty file")
        for i, record in enumerate(reader, 1):
            if None in record:
                raise GoldError(f"{path}, row {i} (line {reader.line_num}): expected {len(reader.fieldnames)} cells, "
                                f"got more")
            rows.append(_row({k.strip(): v for k, v in record.items() if k is not None}, f"{path}, row {i}"))
    else:
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise GoldError(f"{path}, line {i}: expected a JSON object, got invalid JSON ({e.msg})") from None
            if not isinstance(record, dict):
                raise GoldError(f"{path}, line {i}: expected a JSON object, got {type(record).__name__}")
            rows.append(_row(record, f"{path}, line {i}"))
    return rows


def _median(values: Sequence[float]) -> Optional[float]:
    return float(statistics.median(values)) if values else None


def _seconds(stamp: str) -> float:
    from datetime import datetime
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def decision_gaps(stamps: Sequence[str], idle: float = IDLE_GAP_SECONDS) -> list[float]:
    """Seconds between consecutive decisions (ISO stamps, any order), breaks over ``idle`` left out."""
    times = sorted(_seconds(s) for s in stamps)
    return [b - a for a, b in zip(times, times[1:]) if 0 <= b - a <= idle]


def summarise(reviewer: str, answers: Sequence[GoldAnswer], decision_stamps: Sequence[str],
              min_accuracy: float = DEFAULT_MIN_ACCURACY, min_answers: int = DEFAULT_MIN_ANSWERS) -> ReviewerGold:
    """One reviewer's gold figures from their answers and the timestamps of all their decisions."""
    decisive = [a for a in answers if a.label != "skip"]
    correct = sum(a.correct for a in decisive)
    n = len(decisive)
    accuracy = correct / n if n else None
    cells = Counter((a.gold_label, a.label) for a in decisive)
    timed = [a.seconds for a in answers if a.seconds is not None]
    return ReviewerGold(
        reviewer, n, correct, len(answers) - n, accuracy, wilson_interval(correct, n),
        tuple(ConfusionCell(g, a, k) for (g, a), k in sorted(cells.items())),
        _median(decision_gaps(decision_stamps)), _median(timed),
        accuracy is not None and n >= min_answers and accuracy < min_accuracy)
