"""When one process of a job fails alone, every process ends promptly with one sentence naming it.

Three mechanisms, each PyTorch's own:

- **Agreement** where a process can fail alone before a collective (a training batch that does
  not load: a corrupt image, a failing augmentation; its share of the validation): the failure
  rides on a collective every process calls anyway (the step's all-reduce of the batch weights
  carries one more number), and when a process failed every process gathers the sentences
  (``all_gather_object``, only then) and raises :class:`ProcessFailed` with the same sentence, so
  rank 0 records it in the run's summary and state as any failure.
- **Fail fast** anywhere else (a step's forward or backward, a checkpoint written by rank 0): the
  failing process prints its sentence on stderr (:func:`announce`) and exits non-zero; torchrun
  stops the others, and launch.py tells the user that sentence.
- **The process group's timeout** (:func:`group_timeout`) bounds any other wait: a collective
  that waits past it raises, and the process ends with :func:`contact_sentence`.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from typing import Any

#: How long a process waits in one collective for the others (seconds). The longest waits of a
#: healthy job are rank 0's own work while the others wait for it: the scan of the dataset and
#: the Recommended method's trials at the start, a checkpoint of a large model on a slow disk at
#: the end of each epoch. docs/scale-out.md says why 10 minutes.
TIMEOUT_ENV = "REFIT_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600
#: The longest timeout (a year): a larger value, "inf" included, means this one (timedelta and
#: the process group take no infinity).
MAX_TIMEOUT_S = 365 * 24 * 3600
#: A process's sentence as launch.py keeps it (a longer one, forged or not, is cut).
MAX_SENTENCE = 2000
#: The stderr line a failing process prints, for launch.py: the prefix, then one JSON object.
MARKER = "refit: process failed: "


class ProcessFailed(RuntimeError):
    """A process of the job failed alone and every process stops; str() is the sentence, which
    names the process."""

    def __init__(self, sentence: str, rank: int) -> None:
        super().__init__(sentence)
        self.rank = rank


class LostContact(RuntimeError):
    """A collective failed: another process ended, or the wait passed the group's timeout;
    str() is the sentence."""


def group_timeout() -> timedelta:
    """The process group's timeout: REFIT_DIST_TIMEOUT_S seconds (a positive number, at most
    MAX_TIMEOUT_S), else 10 minutes."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        seconds = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        seconds = DEFAULT_TIMEOUT_S
    seconds = seconds if seconds > 0 else DEFAULT_TIMEOUT_S  # nan is not > 0
    return timedelta(seconds=min(seconds, MAX_TIMEOUT_S))


def _resume(run_id: str) -> str:
    return f"`refit resume {run_id or 'RUN'}` continues from the last checkpoint"


def rank_sentence(rank: int, world: int, sentence: str, run_id: str) -> str:
    """``sentence`` (what failed) said of process ``rank`` of ``world``, with how to resume."""
    what = sentence.strip().rstrip(".")
    if "refit resume" in what:
        return f"Process {rank} of {world} failed: {what}."
    return f"Process {rank} of {world} failed: {what}; {_resume(run_id)}."


def is_lost_contact(exc: BaseException) -> bool:
    """Whether ``exc`` is a collective that failed (a process gone, a timeout), not this
    process's own failure: torch's DistError family, an error raised inside a collective of
    torch.distributed, or Gloo's and NCCL's own RuntimeErrors (DDP's backward raises those)."""
    import torch.distributed as td

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ProcessFailed):
            return False
        if isinstance(seen, LostContact | td.DistError) or _raised_in_collective(seen):
            return True
        text = str(seen)
        if isinstance(seen, RuntimeError) and any(m in text for m in _BACKEND_MARKS):
            return True
        seen = seen.__cause__
    return False


_BACKEND_MARKS = ("/gloo/", "NCCL", "pair closure", "Connection closed by peer", "Connection reset")
_C10D = f"torch{os.sep}distributed{os.sep}distributed_c10d.py"


def _raised_in_collective(exc: BaseException) -> bool:
    """The innermost frame of ``exc`` is torch.distributed's collective API."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and tb.tb_frame.f_code.co_filename.endswith(_C10D)


def contact_sentence(exc: BaseException, rank: int, world: int, run_id: str) -> str:
    """What a process says when a collective failed under it."""
    if isinstance(exc, LostContact):
        return str(exc)
    text = str(exc).lower()
    if "timed out" in text or "timeout" in text:
        seconds = round(group_timeout().total_seconds())
        why = (
            f"waited {seconds} s for the other processes without an answer (the job's timeout, "
            f"{TIMEOUT_ENV}): one of them is stuck or failed without ending"
        )
    else:
        why = "lost contact with the other processes: one of them ended"
    return f"Process {rank} of {world} {why}; {_resume(run_id)}."


def announce(rank: int, world: int, sentence: str, *, contact: bool) -> None:
    """Print the failure's sentence on stderr for launch.py (one line: MARKER, then JSON)."""
    record = {"rank": rank, "world": world, "contact": contact, "sentence": sentence}
    # One write: the other processes' lines on the same pipe cannot cut into it.
    sys.stderr.write(MARKER + json.dumps(record) + "\n")
    sys.stderr.flush()


def read_announcement(line: str) -> dict[str, Any] | None:
    """The record of a MARKER line, or None for any other line and for a record that
    :func:`announce` cannot have written (a line forged by a file's name or a print); its
    sentence cut to MAX_SENTENCE, control characters (a terminal's escapes) as spaces."""
    if not line.startswith(MARKER):
        return None
    try:
        record = json.loads(line[len(MARKER) :])
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("sentence"), str):
        return None
    rank, world = record.get("rank"), record.get("world")
    if not (type(rank) is int and type(world) is int and 0 <= rank < world):
        return None
    if not isinstance(record.get("contact"), bool):
        return None
    text = record["sentence"][:MAX_SENTENCE]
    record["sentence"] = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)
    return record
