"""Comparing two runs on the same examples: who is right where, and McNemar's test."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from engine.evaluation.predictions import (
    PredictionError,
    SplitPredictions,
    check_split,
    predict_split,
    predictions_path,
    saved_predictions,
)
from engine.runs import RunDir
from engine.task import Progress, Task, as_task

#: Below this many discordant pairs McNemar's test is the exact binomial test.
EXACT_BELOW = 25
EXACT = "exact"
CHI_SQUARE = "chi-square, continuity-corrected"


class ComparisonError(PredictionError):
    """Two runs that cannot be compared; the message says why in one sentence."""


@dataclass(frozen=True)
class Comparison:
    """Two runs on the examples both predicted (matched by content digest)."""

    run_a: str
    run_b: str
    split: str
    n: int
    accuracy_a: float
    accuracy_b: float
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    statistic: float
    p_value: float
    method: str
    sentence: str


def compare_predictions(
    a: SplitPredictions, b: SplitPredictions, *, names: tuple[str, str] = ("A", "B")
) -> Comparison:
    """Match the examples of ``a`` and ``b`` by digest and test the difference (McNemar).

    Raises ComparisonError when the runs have different classes, share no example, or give one
    example different labels.
    """
    if tuple(a.classes) != tuple(b.classes):
        raise ComparisonError(
            f"The runs {a.run_id} and {b.run_id} have different classes "
            f"({', '.join(a.classes)} / {', '.join(b.classes)}); only runs on the same classes "
            "can be compared."
        )
    ia, ib = match_examples(a, b)
    if not len(ia):
        raise ComparisonError(
            f"The runs {a.run_id} and {b.run_id} have no {a.split} example in common; compare "
            "runs trained on the same data and split."
        )
    if np.any(a.labels[ia] != b.labels[ib]):
        raise ComparisonError(
            f"The runs {a.run_id} and {b.run_id} label some of the same examples differently; "
            "the data changed between them, so right and wrong cannot be compared."
        )
    right_a, right_b = a.correct[ia], b.correct[ib]
    both = int(np.sum(right_a & right_b))
    only_a = int(np.sum(right_a & ~right_b))
    only_b = int(np.sum(~right_a & right_b))
    statistic, p, method = mcnemar(only_a, only_b)
    return Comparison(
        run_a=a.run_id,
        run_b=b.run_id,
        split=a.split,
        n=len(ia),
        accuracy_a=float(right_a.mean()),
        accuracy_b=float(right_b.mean()),
        both_right=both,
        only_a_right=only_a,
        only_b_right=only_b,
        both_wrong=len(ia) - both - only_a - only_b,
        statistic=statistic,
        p_value=p,
        method=method,
        sentence=sentence(only_a, only_b, p, names),
    )


def match_examples(a: SplitPredictions, b: SplitPredictions) -> tuple[np.ndarray, np.ndarray]:
    """Indices into ``a`` and ``b`` of the examples both hold, in ``a``'s order.

    Copies of one example (same digest) pair up in order of appearance.
    """
    where_b: dict[str, list[int]] = defaultdict(list)
    for j, digest in enumerate(b.digests):
        where_b[digest].append(j)
    used: dict[str, int] = defaultdict(int)
    ia, ib = [], []
    for i, digest in enumerate(a.digests):
        k = used[digest]
        if k < len(where_b.get(digest, ())):
            ia.append(i)
            ib.append(where_b[digest][k])
            used[digest] = k + 1
    return np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64)


def mcnemar(b: int, c: int) -> tuple[float, float, str]:
    """McNemar's test on the discordant counts: (statistic, p-value, method).

    Exact two-sided binomial test when b + c < 25 (statistic: min(b, c)); else the chi-square
    statistic with continuity correction, (|b - c| - 1)^2 / (b + c), on one degree of freedom.
    """
    from scipy.stats import binomtest, chi2

    n = b + c
    if n == 0:
        return 0.0, 1.0, EXACT
    if n < EXACT_BELOW:
        return float(min(b, c)), float(binomtest(b, n, 0.5).pvalue), EXACT
    statistic = (abs(b - c) - 1) ** 2 / n
    return float(statistic), float(chi2.sf(statistic, 1)), CHI_SQUARE


def sentence(only_a: int, only_b: int, p: float, names: tuple[str, str] = ("A", "B")) -> str:
    """What the counts and p-value mean, for a person (``names`` of the runs as they should read
    in the sentence, e.g. ("this run", "the base"); the first letter is capitalized)."""
    a, b = names
    if only_a == only_b == 0:
        return (
            f"{a} and {b} are right and wrong on exactly the same examples; there is no difference."
        )
    if only_a == only_b:
        lead = f"{a} and {b} are each right on {only_a} examples the other gets wrong"
    elif only_b > only_a:
        lead = (
            f"{b} is right on {_n(only_b)} {a} gets wrong and {a} on {only_a} that {b} gets wrong"
        )
    else:
        lead = (
            f"{a} is right on {_n(only_a)} {b} gets wrong and {b} on {only_b} that {a} gets wrong"
        )
    verdict = (
        "the difference is unlikely to be chance."
        if p < 0.05
        else "the difference could well be chance."
    )
    return _capital(f"{lead}; McNemar {format_p(p)}: {verdict}")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _n(count: int) -> str:
    return f"{count} example" if count == 1 else f"{count} examples"


def format_p(p: float) -> str:
    """ "p = 0.013", "p < 0.001"."""
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def compare_runs(
    run_a: RunDir,
    run_b: RunDir,
    split: str = "val",
    *,
    allow_test: bool = False,
    device: str = "cpu",
    task: Task | None = None,
    names: tuple[str, str] = ("A", "B"),
) -> Comparison:
    """Compare the best checkpoints of two runs on ``split``; predictions already saved from the
    same checkpoint are reused, new ones are saved (runs/<id>/evaluation/)."""
    check_split(run_a, split, allow_test=allow_test)
    check_split(run_b, split, allow_test=allow_test)
    got = [saved_predictions(run, split) for run in (run_a, run_b)]
    todo = [i for i, p in enumerate(got) if p is None]
    totals = {i: _split_size(run, split) for i, run in enumerate((run_a, run_b)) if i in todo}
    task = as_task(task)
    done_before = 0
    for i in todo:
        run = (run_a, run_b)[i]

        def step(p: Progress, offset: int = done_before) -> None:
            task.report(offset + p.done, sum(totals.values()), p.message)

        part = task.stage(0.0, 1.0, step)
        preds = predict_split(run, split, allow_test=allow_test, device=device, task=part)
        preds.save(predictions_path(run, split))
        got[i] = preds
        done_before += totals[i]
    a, b = got
    assert a is not None and b is not None  # each was saved or predicted above
    return compare_predictions(a, b, names=names)


def _split_size(run: RunDir, split: str) -> int:
    return len(run.splits().get(split, []))
