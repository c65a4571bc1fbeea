"""Whether Resume can continue a run: decided here for the Runs page and the Train page."""

from __future__ import annotations

from engine.runs.errors import RunFileError
from engine.runs.folder import RunDir
from engine.runs.records import RunState


def is_resumable(run: RunDir, *, status: str | None = None, state: RunState | None = None) -> bool:
    """True when the run stopped before its end with a checkpoint to continue from.

    ``status`` is the run list's word for the run (``run_info``): a "damaged" run is never
    resumable, and an "interrupted" one (state.json says running, but the process training it
    is gone) is when a last checkpoint exists. Without ``status`` (the run just ended in this
    process) only state.json's own verdict counts. ``state`` saves reading state.json again; a
    damaged state.json makes the run not resumable.
    """
    if status == "damaged":
        return False
    if state is None:
        try:
            state = run.read_state()
        except RunFileError:  # a damaged state.json: the Runs page says which file
            return False
    if state.resumable:
        return True
    if status == "interrupted":
        from engine.training.checkpoint_files import has_last_checkpoint

        return has_last_checkpoint(run.checkpoints)
    return False
