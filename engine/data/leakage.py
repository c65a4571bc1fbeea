"""Near-duplicate images across splits: the same picture resized or re-encoded in train and val.

Exact copies are found by content hash in the scan (:mod:`engine.data.review`); a copy saved
again as JPEG, resized or re-exported has other bytes but the same picture. Each image gets a
64-bit difference hash (dHash: the grey image shrunk to 9x8, one bit per pair of horizontal
neighbours, "is the left one brighter"), which survives resizing and re-encoding; two images
whose hashes differ in at most ``threshold`` of 64 bits are candidates. On plain pictures
(a shape on a flat background, dark scans) unrelated images can share a dHash, so each candidate
is confirmed by the correlation of the two 32x32 grey thumbnails (re-encoded copies: above 0.99;
different pictures of one kind, in our generated sets: at most 0.96). Only images in different
splits are compared, with numpy's vectorised XOR and popcount in blocks, so thousands of images
take a fraction of a second after decoding.

Why not the ``imagehash`` package (BSD): it would add PyWavelets to the bundle for a dozen lines
of numpy we need; its dHash is the same algorithm.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from engine.data.dicom import DEFAULT_WINDOW
from engine.data.images import load_image
from engine.data.index import DatasetIndex, Sample
from engine.data.problems import ImageError, Problem, ProblemKind
from engine.task import Task, as_task

THRESHOLD = 6  # of 64 bits: re-encoded or resized copies land at 0-3
MIN_CORRELATION = 0.98  # of the 32x32 grey thumbnails, confirming a candidate pair
_THUMB = 32
_FLAT = 2.0  # grey levels of standard deviation below which a thumbnail shows nothing to compare
MAX_REPORTED = 50  # pairs told one by one; the rest are counted in one more sentence
_BLOCK_CELLS = 4_000_000  # cells of the distance matrix computed at once (32 MB of uint64)
_SPLIT_ORDER = ("train", "val", "test")


def dhash(image: Image.Image) -> int:
    """The 64-bit difference hash of an image (see the module docstring)."""
    grey = image.convert("L").resize((9, 8), Image.Resampling.BOX)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, :-1] > pixels[:, 1:]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def thumbnail(image: Image.Image) -> np.ndarray:
    """The 32x32 grey thumbnail, centred and scaled to unit length (float32, 1024 values); all
    zeros for a (nearly) flat picture."""
    grey = image.convert("L").resize((_THUMB, _THUMB), Image.Resampling.BOX)
    values = np.asarray(grey, dtype=np.float32).ravel()
    values -= values.mean()
    if float(values.std()) < _FLAT:
        return np.zeros_like(values)
    return values / float(np.linalg.norm(values))


Fingerprint = tuple[int, np.ndarray]


def fingerprint_files(
    paths: Sequence[str], task: Task | None = None, window: str = DEFAULT_WINDOW
) -> list[Fingerprint | None]:
    """(dHash, thumbnail) of each file (DICOM files in ``window``, as the run decodes them);
    None for a file that cannot be decoded (the scan said why)."""
    task = as_task(task)

    def one(path: str) -> Fingerprint | None:
        try:
            image = load_image(path, min_size=_THUMB, window=window)
        except (ImageError, OSError):
            return None
        thumb = thumbnail(image)
        if not thumb.any():  # a flat picture: every flat picture would look like a copy
            return None
        return dhash(image), thumb.astype(np.float16)  # half the memory of a large scan

    out: list[Fingerprint | None] = []
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="refit-dhash") as pool:
        for start in range(0, len(paths), 256):
            task.check_cancelled()
            out.extend(pool.map(one, paths[start : start + 256]))
    return out


def close_pairs(a: np.ndarray, b: np.ndarray, threshold: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every hash a[i] and b[j] (uint64 arrays) within ``threshold`` bits."""
    found: list[tuple[int, int, int]] = []
    step = max(1, _BLOCK_CELLS // max(1, len(b)))
    for start in range(0, len(a), step):
        block = a[start : start + step]
        dist = np.bitwise_count(block[:, None] ^ b[None, :])
        rows, cols = np.nonzero(dist <= threshold)
        found.extend(
            (start + int(i), int(j), int(dist[i, j])) for i, j in zip(rows, cols, strict=True)
        )
    return found


_GATHER = 2048  # candidate pairs whose thumbnails are compared at once (2 x 8 MB of floats)
MAX_KEPT = 10_000  # confirmed pairs kept to name; beyond, pairs are only counted


def confirmed_pairs(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    threshold: int,
    *,
    upper: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Chunks of (i, j, distance) arrays: the pairs of (hashes, thumbnails) ``a[i]``, ``b[j]``
    within ``threshold`` bits whose thumbnails correlate at least MIN_CORRELATION; ``upper``: a
    is b, and only i < j. Streams block by block, so thousands of look-alike images (every hash
    equal: a folder of gradients or of near-blank scans) never hold millions of candidates."""
    (ha, ta), (hb, tb) = a, b
    step = max(1, _BLOCK_CELLS // max(1, len(hb)))
    for start in range(0, len(ha), step):
        dist = np.bitwise_count(ha[start : start + step, None] ^ hb[None, :])
        mask = dist <= threshold
        if upper:
            mask &= np.arange(start, start + len(dist))[:, None] < np.arange(len(hb))[None, :]
        rows, cols = np.nonzero(mask)
        for first in range(0, len(rows), _GATHER):
            r, c = rows[first : first + _GATHER], cols[first : first + _GATHER]
            left, right = ta[start + r].astype(np.float32), tb[c].astype(np.float32)
            same = np.einsum("ij,ij->i", left, right) >= MIN_CORRELATION
            if same.any():
                yield start + r[same], c[same], dist[r[same], c[same]]


def near_duplicate_problems(
    splits: Mapping[str, Sequence[Sample]],
    root: str | Path,
    *,
    threshold: int = THRESHOLD,
    task: Task | None = None,
    window: str = DEFAULT_WINDOW,
) -> list[Problem]:
    """A LEAKAGE warning for each pair of images in different splits that look the same (exact
    copies are left to the scan's IN_TWO_SPLITS)."""
    names = [n for n in _SPLIT_ORDER if splits.get(n)] + sorted(
        n for n in splits if n not in _SPLIT_ORDER and splits[n]
    )
    if len(names) < 2:
        return []
    hashed = {name: _fingerprints(splits[name], task, window) for name in names}
    pairs: list[tuple[Sample, str, Sample, str, int]] = []
    found = 0
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            sa, ha, ta = hashed[first]
            sb, hb, tb = hashed[second]
            for xs, ys, ds in confirmed_pairs((ha, ta), (hb, tb), threshold):
                if len(pairs) >= MAX_KEPT:
                    found += len(xs)  # only counted now (exact copies, told by the scan, too)
                    continue
                for x, y, d in zip(xs.tolist(), ys.tolist(), ds.tolist(), strict=True):
                    if sa[x].digest != sb[y].digest:
                        found += 1
                        if len(pairs) < MAX_KEPT:
                            pairs.append((sa[x], first, sb[y], second, d))
            as_task(task).check_cancelled()
    pairs.sort(key=lambda p: (p[4], p[0].path, p[2].path))
    base = Path(str(root))
    problems = [_pair_problem(p, base) for p in pairs[:MAX_REPORTED]]
    if found > MAX_REPORTED:
        problems.append(
            Problem(
                kind=ProblemKind.NEAR_DUPLICATE,
                path=pairs[MAX_REPORTED][2].path,
                count=found - MAX_REPORTED,
                message=f"{found - MAX_REPORTED:,} more pairs of near-duplicate images lie in "
                "different splits; keep each picture (and its re-saved copies) in one split.",
            )
        )
    return problems


def _fingerprints(
    samples: Sequence[Sample], task: Task | None, window: str = DEFAULT_WINDOW
) -> tuple[list[Sample], np.ndarray, np.ndarray]:
    """(the samples that decode, their dHashes, their thumbnails)."""
    values = fingerprint_files([s.path for s in samples], task, window)
    kept = [(s, v) for s, v in zip(samples, values, strict=True) if v is not None]
    return (
        [s for s, _ in kept],
        np.array([v[0] for _, v in kept], dtype=np.uint64),
        # float16: 2 KB an image (100,000 images: 200 MB), ample for a 0.98 correlation
        # (no sample that decodes, e.g. all flat images: an empty (0, 0) array, not a crash)
        np.array([v[1] for _, v in kept], dtype=np.float16).reshape(len(kept), -1)
        if kept
        else np.zeros((0, 0), dtype=np.float16),
    )


def near_duplicate_twins(
    samples: Sequence[Sample],
    *,
    threshold: int = THRESHOLD,
    task: Task | None = None,
    window: str = DEFAULT_WINDOW,
) -> list[tuple[str, str]]:
    """Pairs of paths of near-duplicate images among ``samples`` (exact copies left out: the
    scan keeps one of each), for a split to keep on one side. Only the pairs that join two
    clusters are returned (a spanning forest: at most one pair per image), which keeps the same
    images together as all pairs would: a thousand look-alikes give 999 pairs, not 499,500."""
    kept, hashes, thumbs = _fingerprints(samples, task, window)
    parent = list(range(len(kept)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pairs = []
    for xs, ys, _ in confirmed_pairs((hashes, thumbs), (hashes, thumbs), threshold, upper=True):
        for i, j in zip(xs.tolist(), ys.tolist(), strict=True):
            ri, rj = root(i), root(j)
            if ri != rj and kept[i].digest != kept[j].digest:
                parent[rj] = ri
                pairs.append((kept[i].path, kept[j].path))
    return sorted(pairs)


def twins_problem(twins: Sequence[tuple[str, str]], root: str | Path) -> Problem | None:
    """ONE notice that near-duplicates are kept on one side of the split, naming a few."""
    if not twins:
        return None
    base = Path(str(root))
    shown = "; ".join(f"{_rel(a, base)} and {_rel(b, base)}" for a, b in twins[:3])
    more = f" and {len(twins) - 3} more" if len(twins) > 3 else ""
    n = len(twins)
    return Problem(
        kind=ProblemKind.NEAR_DUPLICATE,
        path=twins[0][1],
        count=n,
        message=f"{n} {'pair' if n == 1 else 'pairs'} of images "
        f"{'shows' if n == 1 else 'show'} nearly the same picture "
        f"({shown}{more}); the split keeps each pair on one side. Remove the copies you did not "
        "mean to keep.",
    )


def index_near_duplicates(
    index: DatasetIndex, task: Task | None = None, window: str = DEFAULT_WINDOW
) -> list[Problem]:
    """Near-duplicates across the train/val/test folders of a scanned index (none without)."""
    if not index.has_splits:
        return []
    by_split: dict[str, list[Sample]] = {}
    for s in index.samples:
        by_split.setdefault(s.split or "train", []).append(s)
    return near_duplicate_problems(by_split, index.root, task=task, window=window)


def _pair_problem(pair: tuple[Sample, str, Sample, str, int], root: Path) -> Problem:
    a, a_split, b, b_split, dist = pair
    how = "the same picture" if dist == 0 else f"nearly the same picture ({dist} of 64 bits apart)"
    return Problem(
        kind=ProblemKind.NEAR_DUPLICATE,
        path=b.path,
        message=f"{_rel(a.path, root)} ({a_split}) and {_rel(b.path, root)} ({b_split}) show "
        f"{how}, resized or re-encoded; the {b_split} result will be too optimistic. Keep both "
        "in one split, or remove one.",
    )


def _rel(path: str, root: Path) -> str:
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return Path(path).name
