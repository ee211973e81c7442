"""faiss indexes: the store's own (save / load round trip, staleness, IVF-PQ), an autofaiss-layout
folder built here, and the retrieval stage writing neighbours with RMSE."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from attack.images.embed import load_embedder
from attack.images.index import (
    RetrievalError,
    build_store_index,
    index_folder,
    load_autofaiss,
    load_index,
    new_faiss_index,
    save_index,
    store_index,
)
from attack.images.metrics import rmse, to_compare
from attack.stages.masks import resize_mask
from attack.stages.retrieve import RetrieveParams, retrieve_stage
from store import CaptionRow, Store

from .conftest import snapshot


def _img(seed: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.kron(rng.uniform(0, 1, (size // 4, size // 4, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)


@pytest.fixture
def train_store(tmp_path):
    """12 distinct training images; image 0 is stored under three captions."""
    path = tmp_path / "s"
    with Store.open(path) as s:
        caps = s.add_captions([CaptionRow(f"caption {i}") for i in range(14)])
        for i in range(12):
            s.add_training_image(s.put_image(_img(i)), caps[i], f"t{i}.png")
        for c in caps[12:]:
            s.add_training_image(s.put_image(_img(0)), c, "t0-again.png")
    return path


def test_store_index_has_one_row_per_distinct_image_and_round_trips(train_store, tmp_path):
    e = load_embedder("pixel")
    with Store.open(train_store) as s:
        idx = build_store_index(s, e)
        assert idx.ntotal == 12 and sorted(idx.ids.tolist()) == list(range(1, 13))
        q = e.embed(torch.from_numpy(np.stack([_img(3), _img(0)])).permute(0, 3, 1, 2).float() / 255).numpy()
        sims, rows = idx.search(q, 4)
        assert idx.ids[rows[0, 0]] == 4 and idx.ids[rows[1, 0]] == 1 and sims[0, 0] == pytest.approx(1.0, abs=1e-5)
        save_index(idx, tmp_path / "ix")
    for mmap in (True, False):
        back = load_index(tmp_path / "ix", mmap=mmap)
        s2, r2 = back.search(q, 4)
        assert np.array_equal(r2, rows) and np.allclose(s2, sims) and np.array_equal(back.ids, idx.ids)
        assert back.embedder == "pixel" and back.factory == "Flat" and back.info["training_images"] == 14
    with pytest.raises(RetrievalError, match=r"expected query vectors \[N,768\] \(pixel\), got \(2, 5\)"):
        back.search(np.zeros((2, 5), np.float32), 3)


def test_saved_index_is_reused_until_the_training_images_change(train_store):
    e = load_embedder("pixel")
    with Store.open(train_store) as s:
        first = store_index(s, e)
        folder = index_folder(s, "pixel")
        assert (folder / "image.index").is_file() and folder.parent == train_store / "index"
        stamp = (folder / "image.index").stat().st_mtime_ns
        assert store_index(s, e).ntotal == first.ntotal
        assert (folder / "image.index").stat().st_mtime_ns == stamp  # loaded, not rebuilt
        (cid,) = s.add_captions([CaptionRow("a new one")])
        s.add_training_image(s.put_image(_img(99)), cid, "new.png")
        assert store_index(s, e).ntotal == 13


def test_ivf_pq_factory_and_bad_factories():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = new_faiss_index(16, "IVF4,PQ4x4", x, nprobe=4)
    _, rows = index.search(x[:20], 5)
    assert index.ntotal == 800 and (rows[:, :5] == np.arange(20)[:, None]).any(1).mean() >= 0.8
    with pytest.raises(RetrievalError, match="expected a faiss factory string such as 'Flat'"):
        new_faiss_index(16, "NotAFactory", x)


def _autofaiss(folder, n: int = 20, arrow: bool = False, columns=("url", "caption", "image_path")):
    """An autofaiss / clip-retrieval layout: image.index + metadata rows in index order."""
    import faiss

    e = load_embedder("pixel")
    (folder / "images").mkdir(parents=True)
    imgs = [_img(100 + i, 24) for i in range(n)]
    for i, a in enumerate(imgs):
        Image.fromarray(a).save(folder / "images" / f"{i:04d}.png")
    v = e.embed(torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255).numpy()
    index = faiss.IndexFlatIP(v.shape[1])
    index.add(v)
    faiss.write_index(index, str(folder / "image.index"))
    data = {"url": [f"https://laion.example/{i}.jpg" for i in range(n)], "caption": [f"laion caption {i}" for i in range(n)],
            "image_path": [f"images/{i:04d}.png" for i in range(n)]}
    table = pa.table({k: data[k] for k in columns})
    if arrow:
        with pa.OSFile(str(folder / "metadata.arrow"), "wb") as f, pa.ipc.new_file(f, table.schema) as w:
            w.write_table(table)
    else:
        (folder / "metadata").mkdir()
        pq.write_table(table.slice(0, n // 2), folder / "metadata" / "0000.parquet")
        pq.write_table(table.slice(n // 2), folder / "metadata" / "0001.parquet")
    return imgs, v


@pytest.mark.parametrize("arrow", [False, True])
def test_autofaiss_layout_loads_memory_mapped_with_its_metadata(tmp_path, arrow):
    imgs, v = _autofaiss(tmp_path / "laion", arrow=arrow)
    idx = load_autofaiss(tmp_path / "laion", "pixel")
    assert idx.ntotal == 20 and idx.factory == "external"
    sims, rows = idx.search(v[[3, 17]], 3)
    assert rows[:, 0].tolist() == [3, 17]
    assert idx.meta_row(17) == {"url": "https://laion.example/17.jpg", "caption": "laion caption 17",
                                "image_path": "images/0017.png"}


def test_autofaiss_layout_errors_name_what_is_missing(tmp_path):
    _autofaiss(tmp_path / "a", columns=("url", "image_path"))
    with pytest.raises(RetrievalError, match="expected metadata columns url, caption, got url, image_path"):
        load_autofaiss(tmp_path / "a", "pixel")
    _autofaiss(tmp_path / "b")
    pq.write_table(pa.table({"url": ["x"], "caption": ["y"], "image_path": ["z"]}),
                   tmp_path / "b" / "metadata" / "0002.parquet")
    with pytest.raises(RetrievalError, match=r"expected one metadata row per index row \(20\), got 21"):
        load_autofaiss(tmp_path / "b", "pixel")
    (tmp_path / "c").mkdir()
    with pytest.raises(RetrievalError, match="expected a faiss index file, got no such file"):
        load_autofaiss(tmp_path / "c", "pixel")
    (tmp_path / "c" / "image.index").write_bytes(b"garbage")
    with pytest.raises(RetrievalError, match="expected a faiss index, got an unreadable file"):
        load_autofaiss(tmp_path / "c", "pixel")


def _generation(s: Store, caption: str, image: np.ndarray) -> int:
    cid = s.caption_id(caption) or s.add_captions([CaptionRow(caption)])[0]
    run = s.start_run("generate", "demo", {})
    return s.add_generation(cid, run, 0, 16, "heun-karras", s.put_image(image))


def test_retrieve_stage_stores_k_neighbours_with_rmse_and_resumes(train_store):
    with Store.open(train_store) as s:
        near = np.clip(_img(5).astype(int) + 6, 0, 255).astype(np.uint8)
        gid = _generation(s, "caption 5", near)
        rep = retrieve_stage(s, RetrieveParams(k=4))
        assert (rep.computed, rep.skipped, rep.neighbours) == (1, 0, 4)
        ns = s.neighbours(gid)
        assert [n.rank for n in ns] == [0, 1, 2, 3] and ns[0].train_image_id == 6
        assert ns[0].similarity >= ns[1].similarity
        expected = float(rmse(to_compare(near), to_compare(_img(5)))[0])
        assert ns[0].rmse == pytest.approx(expected, abs=1e-5)
        again = retrieve_stage(s, RetrieveParams(k=4))
        assert (again.run_id, again.computed, again.skipped) == (rep.run_id, 0, 1)
        assert s.get_run(rep.run_id).params["retrieve"]["k"] == 4


def test_retrieve_stage_against_an_external_index_adds_hits_as_training_images(tmp_path):
    imgs, _ = _autofaiss(tmp_path / "laion")
    with Store.open(tmp_path / "s") as s:
        gid = _generation(s, "laion caption 7", imgs[7])
        rep = retrieve_stage(s, RetrieveParams(k=3), external=tmp_path / "laion")
        assert rep.neighbours == 3 and rep.unavailable == 0
        top = s.neighbours(gid)[0]
        t = s.get_training_image(top.train_image_id)
        assert t.path_or_url == "https://laion.example/7.jpg" and t.meta == {"caption": "laion caption 7", "index_row": 7}
        assert top.rmse == pytest.approx(0.0, abs=1e-6)


def test_retrieve_with_a_bad_embedder_or_index_changes_nothing(train_store, tmp_path):
    with Store.open(train_store) as s:
        _generation(s, "caption 1", _img(1))
    before = snapshot(train_store)
    with Store.open(train_store) as s:
        with pytest.raises(RetrievalError, match="expected a faiss index file, got no such file"):
            retrieve_stage(s, RetrieveParams(), external=tmp_path / "nowhere")
        with pytest.raises(RetrievalError, match="expected k >= 1 neighbours, got 0"):
            retrieve_stage(s, RetrieveParams(k=0))
    assert snapshot(train_store) == before


def _family_images(size: int, seed: int, n: int, side: int) -> list[np.ndarray]:
    """n template siblings: one blocky picture with a different colour in one square each."""
    rng = np.random.default_rng(seed)
    base = np.kron(rng.uniform(0.1, 0.9, (size // 8 + 1, size // 8 + 1, 3)), np.ones((8, 8, 1)))[:size, :size]
    out = []
    for k in range(n):
        img = (base * 255).astype(np.uint8)
        r, c = rng.integers(0, size - side, 2)
        img[r:r + side, c:c + side] = rng.integers(0, 256, 3)
        out.append(img)
    return out


def _mask_as_retrieval_built_it_before(s: Store, idx, embedder, tid: int):
    """The auto mask of tid as retrieval computed it before it kept anything per image: every image
    decoded and converted anew, the grid built from image_tensor, no gate in front of template_mask."""
    from attack.images.index import embed_tensors, image_tensor
    from attack.stages.masks import MaskParams, mask_grid, template_mask

    params = MaskParams()
    sha = s.get_training_image(tid).sha256
    own = image_tensor(s, sha)
    _, rows = idx.search(embed_tensors(embedder, [own]), params.candidates + 1)
    cand_ids = [int(idx.ids[r]) for r in rows[0] if r >= 0 and int(idx.ids[r]) != tid]
    keep = [(c, t) for c in cand_ids if (t := s.get_training_image(c).sha256) != sha][: params.candidates]
    if not keep:
        return None

    def compare(h: str) -> torch.Tensor:
        return torch.from_numpy(s.compare_pixels(h).copy()).permute(2, 0, 1).contiguous().float() / 255.0

    natives = mask_grid([own] + [image_tensor(s, t) for _, t in keep])
    return template_mask(compare(sha), torch.stack([compare(t) for _, t in keep]), params, [c for c, _ in keep],
                         None if natives is None else (natives[0], natives[1:]))


@pytest.mark.parametrize("size", [32, 300])
def test_retrieval_keeping_images_per_stage_builds_the_masks_it_built_before(tmp_path, size):
    """CompareImages keeps each image's float view, block means and 3x3 mean for the stage, and a
    gate skips images whose neighbours cannot be siblings: the masks (keep, siblings, their RMSE)
    must be those of the plain computation, at the compare grid (300 px) and on a small image's own
    pixels (32 px)."""
    from attack.images.index import store_index

    fam = _family_images(size, 0, 4, size // 5) + _family_images(size, 1, 3, size // 3)
    loners = [_family_images(size, 10 + k, 1, 2)[0] for k in range(4)]
    with Store.open(tmp_path / "s") as s:
        caps = s.add_captions([CaptionRow(f"c{i}") for i in range(len(fam) + len(loners))])
        tids = [s.add_training_image(s.put_image(img), c, f"t{i}.png")
                for i, (img, c) in enumerate(zip(fam + loners, caps))]
        _generation(s, "c0", fam[0])
        _generation(s, "c5", loners[1])
        embedder = load_embedder("pixel")
        rep = retrieve_stage(s, RetrieveParams(k=len(tids)), embedder=embedder)
        assert rep.masks_examined == len(tids) and rep.masks_built >= 4
        idx = store_index(s, embedder)
        for tid in tids:
            want, got = _mask_as_retrieval_built_it_before(s, idx, embedder, tid), s.current_mask(tid)
            assert (want is None) == (got is None), tid
            if got is not None:
                assert np.array_equal(s.load_mask(got.image_sha), resize_mask(want.keep, (size, size)))
                assert got.meta["siblings"] == list(want.dups) and got.meta["sibling_rmse"] == list(want.dup_rmse)
