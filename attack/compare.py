"""Before and after: the captions of one store attacked under two models, side by side (issue 28).

`compare_models(store, "A", "B")` takes the captions with generations under both models (runs are
keyed by the model's content, so A and B are spec labels as the runs recorded them, or
fingerprints) and, for each, labels each model's side from that model's generations alone
(`Store.only_runs`, the labeller's own rule, `caption_label`: nothing is written to the
store's automatic labels). A side's label in force is its human label when there is one, else
its automatic label; it is a copy when that label is MV, TV or RV. The outcome of a caption is
*removed* (a copy under A, not under B), *persisting* (both), *new* (B only) or *neither*.

Human labels: a store's labels are given in the review app to the model audited there, the
model of the store's first generate run (`audited_model`, schema.AUDITED_FP: the review, its
candidates and the store's automatic labels are of that model alone); they count on that model's
side only. Another model's human labels are its own (store.model_labels), given when a reviewer
confirms what attack/carry.py carries over from the audited model.

The comparison is written as a compare run (its params name both models' fingerprints and the
generate runs each side rests on) with one row per caption, and read back by `load_compare`.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Optional

from attack.errors import AttackError
from store import Store
from store.compares import OUTCOMES

COPY_LABELS = ("MV", "TV", "RV")


class CompareInputError(AttackError):
    """Two models that cannot be compared on a store (unknown, the same, or no caption in common)."""


@dataclass(frozen=True)
class CompareParams:
    """by: the score kind that ranks each side (its rank and the precision-vs-found curve);
    top_k: only captions within the top K of either model by that score (None: all in common);
    preset: the label rule each side is labelled with (attack.stages.rules)."""
    by: str = "dcs"
    top_k: Optional[int] = None
    preset: str = "verbatim"

    def __post_init__(self) -> None:
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 1):
            raise CompareInputError(f"expected --top-k >= 1, got {self.top_k!r}")


@dataclass(frozen=True)
class Side:
    """One model's view of one caption."""
    auto_label: Optional[str]          # None: its generations have no neighbours yet
    human_label: Optional[str]
    label: Optional[str]               # in force: the human label (a skip aside), else the automatic one
    train_image_id: Optional[int]      # the match the label rests on (for N: the nearest training image)
    distance: Optional[float]          # its RMSE (masked for TV, aligned for aligned evidence)
    evidence_kind: Optional[str]       # pixel | masked | aligned | None (N)
    generation_id: Optional[int]       # the generation of that pair
    score: Optional[float]
    rank: Optional[int]                # 1 = highest `by` score among the model's scored captions
    generations: int
    flags: tuple[str, ...] = ()
    own_distance: Optional[float] = None   # the nearest of its generations to the caption's own training image
    human_by: Optional[str] = None         # who gave the human label

    @property
    def copy(self) -> bool:
        return self.label in COPY_LABELS


@dataclass(frozen=True)
class CompareRow:
    caption_id: int
    caption: str
    outcome: str
    a: Side
    b: Side


@dataclass(frozen=True)
class CompareResult:
    """A comparison as written: run id, both models (as named and as fingerprints), its rows."""
    run_id: int
    params: CompareParams
    models: tuple[str, str]
    fingerprints: tuple[str, str]
    audited: Optional[str]             # "a", "b" or None: the side the store's human labels belong to
    rows: tuple[CompareRow, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        got = Counter(r.outcome for r in self.rows)
        return {o: got.get(o, 0) for o in OUTCOMES}

    def by_type(self) -> dict[str, dict[str, int]]:
        """Outcome -> copy type -> captions: A's type for removed and persisting, B's for new."""
        out: dict[str, dict[str, int]] = {o: {} for o in OUTCOMES if o != "neither"}
        for r in self.rows:
            if r.outcome == "neither":
                continue
            kind = (r.b if r.outcome == "new" else r.a).label
            out[r.outcome][kind] = out[r.outcome].get(kind, 0) + 1
        return out

    def curves(self) -> dict[str, list[dict[str, float]]]:
        """Each model's precision-vs-found curve: its captions in `by` order (highest first; those
        without a score last, in id order), after each: copies found so far and their precision."""
        return {"a": _curve(self.rows, "a"), "b": _curve(self.rows, "b")}

    def as_json(self) -> dict[str, Any]:
        return {"compare_run": self.run_id, "models": list(self.models), "fingerprints": list(self.fingerprints),
                "audited": self.audited, "params": asdict(self.params), "captions": len(self.rows),
                "outcomes": self.counts(), "by_type": self.by_type(),
                "copies": {"a": sum(r.a.copy for r in self.rows), "b": sum(r.b.copy for r in self.rows)}}

    def summary(self) -> str:
        c = self.counts()
        return (f"compare: run {self.run_id}, {len(self.rows)} captions under both {self.models[0]} (A) and "
                f"{self.models[1]} (B): {c['removed']} removed, {c['persisting']} persisting, {c['new']} new, "
                f"{c['neither']} neither")


def _curve(rows: Sequence[CompareRow], side: str) -> list[dict[str, float]]:
    def key(r: CompareRow) -> tuple:
        s = getattr(r, side)
        return (s.rank is None, s.rank if s.rank is not None else 0, r.caption_id)

    found, out = 0, []
    for n, r in enumerate(sorted(rows, key=key), 1):
        found += getattr(r, side).copy
        out.append({"n": n, "found": found, "precision": round(found / n, 4)})
    return out


def outcome(a_copy: bool, b_copy: bool) -> str:
    """removed | persisting | new | neither, from whether each side is a copy."""
    return ("persisting" if b_copy else "removed") if a_copy else ("new" if b_copy else "neither")


# -- resolving the two models ----------------------------------------------------------------------
@dataclass(frozen=True)
class _Model:
    name: str
    fingerprint: str
    generate_runs: tuple[int, ...]


def _resolve(store: Store, name: str) -> _Model:
    fp = store.model_fingerprint(name, "generate") or store.model_fingerprint(name, "score")
    runs = tuple(r.id for r in store.runs(stage="generate", fingerprint=fp)) if fp else ()
    if not runs:
        known = sorted({r.model for r in store.runs(stage="generate") if r.params.get("model_fingerprint")})
        raise CompareInputError(f"--model {name}: expected a model with generations in {store.path}, got none "
                                f"(models with generations: {', '.join(known) or 'none'}; run "
                                f"`python -m attack run --store {store.path} --model {name}` first)")
    return _Model(name, fp, runs)


def audited_model(store: Store) -> Optional[str]:
    """The fingerprint of the model the store's human labels were given for: its first generate run's."""
    for r in store.runs(stage="generate"):
        fp = r.params.get("model_fingerprint")
        if fp:
            return fp
    return None


# -- one side --------------------------------------------------------------------------------------
def _match(label: str, distances: dict) -> tuple[Optional[int], Optional[float], Optional[int]]:
    """(training image, distance, generation) a label rests on; for N the nearest pair."""
    if distances.get("evidence_kind") == "aligned":
        a = distances["aligned"]
        return a["train_image_id"], a.get("aligned_rmse"), a["generation_id"]
    if label in COPY_LABELS:
        k = label.lower()
        return distances.get(f"{k}_train_image_id"), distances.get(k), distances.get(f"{k}_generation_id")
    near = [(distances[k], k) for k in ("mv", "rv") if distances.get(k) is not None]
    if not near:
        return None, None, None
    d, k = min(near)
    return distances.get(f"{k}_train_image_id"), d, distances.get(f"{k}_generation_id")


def _ranks(scores: dict[int, float]) -> dict[int, int]:
    order = sorted(scores, key=lambda c: (-scores[c], c))
    return {c: i for i, c in enumerate(order, 1)}


def _side_labels(store: Store, model: _Model, caption_ids: Sequence[int], preset: str) -> dict[int, tuple]:
    """caption id -> (label, distances, flags) from this model's generations alone, or None when
    one of them has no neighbours yet (retrieve first)."""
    from attack.images.compare import ComparePixels
    from attack.images.flags import FlagParams
    from attack.images.structure import StructureParams
    from attack.stages.align import AlignParams
    from attack.stages.labels import caption_evidence, caption_label
    from attack.stages.rules import resolve
    from attack.stages.witness import StructureCheck

    th, structure, align = resolve(preset, StructureParams(), AlignParams())
    out: dict[int, Any] = {}
    with store.only_runs(model.generate_runs):
        images, cache = ComparePixels(store), {}
        check = StructureCheck(store, images, structure) if structure is not None else None
        for cid in caption_ids:
            ev = caption_evidence(store, cid, th, FlagParams(), align, structure)
            out[cid] = None if ev is None else caption_label(store, cid, th, FlagParams(), images, ev, align, cache,
                                                             structure, check)
    return out


def _sides(store: Store, model: _Model, ids: Sequence[int], labels: dict, scores: dict[int, float],
           ranks: dict[int, int], human: dict[int, tuple[str, str]]) -> dict[int, Side]:
    out = {}
    for cid in ids:
        got = labels[cid]
        auto, distances, flags = got if got is not None else (None, {}, ())
        h, by = human.get(cid, (None, None))
        label = h if h not in (None, "skip") else auto
        tid, dist, gid = _match(auto, distances) if auto is not None else (None, None, None)
        with store.only_runs(model.generate_runs):
            n = len(store.generations(cid))
        own = distances.get("mv")
        out[cid] = Side(auto, h, label, tid, None if dist is None else round(float(dist), 6),
                        distances.get("evidence_kind"), gid, scores.get(cid), ranks.get(cid), n, tuple(flags),
                        None if own is None else round(float(own), 6), by)
    return out


def human_labels(store: Store, fingerprint: str, caption_ids: Sequence[int],
                 audited: Optional[str]) -> dict[int, tuple[str, str]]:
    """caption id -> (human label in force, who gave it) for one model: the store's review
    (`labels`) for the audited model, the model's own labels (store.model_labels) for another."""
    if fingerprint != audited:
        return {c: (e.label, e.reviewer) for c, e in store.model_labels(fingerprint, caption_ids).items()}
    out = {}
    for c in caption_ids:
        label = store.current_label(c)
        if label is None:
            continue
        latest = store.current_label_entry(c)     # who gave it; under blind review, the history says
        if latest is None or latest.label != label:
            given = [e for e in store.label_history(c) if e.label == label]
            latest = given[-1] if given else None
        out[c] = (label, latest.reviewer if latest else "")
    return out


def _relabel(side: Side, human: Optional[tuple[str, str]]) -> Side:
    h, by = human or (None, None)
    return replace(side, human_label=h, human_by=by, label=h if h not in (None, "skip") else side.auto_label)


def with_human_labels(store: Store, result: CompareResult) -> CompareResult:
    """The comparison with each side's human labels as they are now (a comparison is written as it
    was made; labels given since, e.g. a carried-over group confirmed, change labels and outcomes)."""
    audited, ids = audited_model(store), [r.caption_id for r in result.rows]
    human = [human_labels(store, fp, ids, audited) for fp in result.fingerprints]
    rows = []
    for r in result.rows:
        a, b = _relabel(r.a, human[0].get(r.caption_id)), _relabel(r.b, human[1].get(r.caption_id))
        rows.append(replace(r, a=a, b=b, outcome=outcome(a.copy, b.copy)))
    return replace(result, rows=tuple(rows))


# -- the comparison --------------------------------------------------------------------------------
def common_captions(store: Store, a: _Model, b: _Model) -> list[int]:
    """Captions with generations under both models, by id."""
    return sorted(store.captions_generated_by(a.generate_runs) & store.captions_generated_by(b.generate_runs))


def compare_models(store: Store, model_a: str, model_b: str, params: CompareParams = CompareParams()) -> CompareResult:
    """Compare two models' copies on the captions attacked under both; writes a compare run."""
    from attack.stages.rules import preset as check_preset

    check_preset(params.preset)
    a, b = _resolve(store, model_a), _resolve(store, model_b)
    if a.fingerprint == b.fingerprint:
        raise CompareInputError(f"expected two different models, got {model_a} and {model_b}, both the model "
                                f"{a.fingerprint[:12]} (the same weights and mitigation)")
    ids = common_captions(store, a, b)
    scores = {m.fingerprint: store.latest_scores(params.by, m.fingerprint) for m in (a, b)}
    ranks = {fp: _ranks(s) for fp, s in scores.items()}
    if params.top_k is not None:
        ids = [c for c in ids if min(ranks[a.fingerprint].get(c, 10**12), ranks[b.fingerprint].get(c, 10**12))
               <= params.top_k]
    if not ids:
        raise CompareInputError(f"expected captions with generations under both {model_a} and {model_b} in "
                                f"{store.path}{' within the top ' + str(params.top_k) if params.top_k else ''}, "
                                f"got none (generate the same captions under both models)")
    audited = audited_model(store)
    sides = {}
    for m in (a, b):
        labels = _side_labels(store, m, ids, params.preset)
        sides[m.fingerprint] = _sides(store, m, ids, labels, scores[m.fingerprint], ranks[m.fingerprint],
                                      human_labels(store, m.fingerprint, ids, audited))
    texts = {c: store.get_caption(c).text for c in ids}
    rows = tuple(CompareRow(c, texts[c], outcome(sides[a.fingerprint][c].copy, sides[b.fingerprint][c].copy),
                            sides[a.fingerprint][c], sides[b.fingerprint][c]) for c in ids)
    run_params = {"models": [a.fingerprint, b.fingerprint], "generate_runs": [list(a.generate_runs),
                  list(b.generate_runs)], **asdict(params)}
    run_id = store.start_run("compare", f"{model_a} vs {model_b}", run_params)
    with store.running(run_id):
        store.add_compare_rows(run_id, [(r.caption_id, r.outcome, _side_json(r.a), _side_json(r.b)) for r in rows])
    store.finish_run(run_id, 0, "done")
    side = "a" if audited == a.fingerprint else "b" if audited == b.fingerprint else None
    return CompareResult(run_id, params, (model_a, model_b), (a.fingerprint, b.fingerprint), side, rows)


def _side_json(s: Side) -> dict:
    d = asdict(s)
    d["flags"] = list(s.flags)
    d["copy"] = s.copy
    return d


def load_compare(store: Store, run_id: int) -> CompareResult:
    """A written comparison, as compare_models returned it."""
    run = store.get_run(run_id)
    rows = []
    for rec in store.compare_rows(run_id):        # NotFoundError for a run that is not a compare run
        def side(d: dict) -> Side:
            return Side(**{k: (tuple(v) if k == "flags" else v) for k, v in d.items() if k != "copy"})
        rows.append(CompareRow(rec.caption_id, store.get_caption(rec.caption_id).text, rec.outcome,
                               side(rec.a), side(rec.b)))
    p = run.params
    names = tuple(run.model.split(" vs ", 1)) if " vs " in run.model else (run.model, "")
    fps = tuple(p["models"])
    audited = audited_model(store)
    side_of = "a" if audited == fps[0] else "b" if audited == fps[1] else None
    return CompareResult(run_id, CompareParams(p["by"], p["top_k"], p["preset"]), names, fps, side_of, tuple(rows))


# -- export ------------------------------------------------------------------------------------------
COLUMNS = ("caption_id", "caption", "outcome",
           *[f"{s}_{k}" for s in ("a", "b") for k in ("label", "auto_label", "human_label", "human_by",
                                                         "train_image_id", "distance", "evidence_kind", "score",
                                                         "rank", "flags")])


def export_rows(result: CompareResult) -> list[dict]:
    """One flat dict per caption, COLUMNS order (flags joined with ';')."""
    out = []
    for r in result.rows:
        row: dict[str, Any] = {"caption_id": r.caption_id, "caption": r.caption, "outcome": r.outcome}
        for name, s in (("a", r.a), ("b", r.b)):
            row.update({f"{name}_label": s.label, f"{name}_auto_label": s.auto_label,
                        f"{name}_human_label": s.human_label, f"{name}_human_by": s.human_by,
                        f"{name}_train_image_id": s.train_image_id,
                        f"{name}_distance": s.distance, f"{name}_evidence_kind": s.evidence_kind,
                        f"{name}_score": s.score, f"{name}_rank": s.rank, f"{name}_flags": ";".join(s.flags)})
        out.append(row)
    return out


_INTS = ("caption_id", "a_train_image_id", "b_train_image_id", "a_rank", "b_rank")
_FLOATS = ("a_distance", "b_distance", "a_score", "b_score")
FORMATS = ("csv", "jsonl", "parquet")


def compare_bytes(result: CompareResult, fmt: str) -> bytes:
    """The comparison's rows as csv (formula cells neutralised), jsonl or parquet."""
    from store.export import write_csv, write_jsonl

    rows, columns = export_rows(result), list(COLUMNS)
    if fmt == "csv":
        return write_csv(rows, columns)
    if fmt == "jsonl":
        return write_jsonl(rows, columns)
    if fmt == "parquet":
        import io

        import pyarrow as pa
        import pyarrow.parquet as pq

        schema = pa.schema([pa.field(c, pa.int64() if c in _INTS else pa.float64() if c in _FLOATS else pa.string())
                            for c in columns])
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), buf, compression="zstd")
        return buf.getvalue()
    raise CompareInputError(f"expected a format among {', '.join(FORMATS)}, got {fmt!r}")


def write_compare(result: CompareResult, out, force: bool = False) -> str:
    """Write the rows to `out` in the format its suffix names (.csv, .jsonl, .parquet); the store's
    output rules apply (outside a store folder, no overwrite without force). Returns the format."""
    from pathlib import Path

    from store.outputs import check_output, write_output

    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise CompareInputError(f"--out {out}: expected a .csv, .jsonl or .parquet file (the evidence .zip: "
                                f"review.compare_evidence), got {out.suffix or 'no suffix'}")
    write_output(check_output(out, force=force), compare_bytes(result, fmt))
    return fmt


def curves_svg(result: CompareResult, width: int = 480, height: int = 320) -> str:
    """Both models' precision-vs-found curves on one plot (SVG): x the copies found walking each
    model's captions in `by` order, y the precision at that point; A solid, B dashed."""
    from html import escape

    pad = 40
    curves = result.curves()
    most = max([p["found"] for c in curves.values() for p in c] + [1])

    def xy(p: dict) -> str:
        x = pad + p["found"] / most * (width - 2 * pad)
        return f"{x:.1f},{height - pad - p['precision'] * (height - 2 * pad):.1f}"

    lines = []
    for (side, c), dash, name in zip(curves.items(), ("", ' stroke-dasharray="6 4"'), result.models):
        pts = " ".join(xy(p) for p in c)
        lines.append(f'<polyline fill="none" stroke="black" stroke-width="2"{dash} points="{pts}"/>')
        y = 18 if side == "a" else 34
        lines.append(f'<text x="{width - pad}" y="{y}" text-anchor="end" font-size="12">{side.upper()}: '
                     f'{escape(name)}{" (dashed)" if dash else ""}</text>')
    axes = (f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="gray"/>'
            f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="gray"/>'
            f'<text x="{width / 2}" y="{height - 8}" text-anchor="middle" font-size="12">copies found '
            f'(0 to {most}), captions in {escape(result.params.by)} order</text>'
            f'<text x="12" y="{height / 2}" font-size="12" transform="rotate(-90 12 {height / 2})" '
            f'text-anchor="middle">precision (0 to 1)</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{axes}{"".join(lines)}</svg>\n')


def write_plot(result: CompareResult, out, force: bool = False) -> None:
    """curves_svg to `out` (.svg), under the store's output rules."""
    from pathlib import Path

    from store.outputs import check_output, write_output

    out = Path(out)
    if out.suffix.lower() != ".svg":
        raise CompareInputError(f"--plot {out}: expected an .svg file, got {out.suffix or 'no suffix'}")
    write_output(check_output(out, force=force, flag="--plot"), curves_svg(result).encode("utf-8"))
