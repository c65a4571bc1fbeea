"""What goes wrong with run folders and workspaces, and the sentences' shared endings."""

from __future__ import annotations

REMEDY = "restore it from a backup, or delete the run folder if the run is no longer needed"
CHOOSE = "choose another workspace (--workspace, or REFIT_HOME)"


class RunNotFoundError(LookupError):
    """A run id or folder that does not exist in the workspace."""


class RunFileError(ValueError):
    """A file of a run folder that exists but cannot be read or used (one sentence)."""


class WorkspaceError(ValueError):
    """A workspace where runs cannot be listed or saved: a file, read-only, unwritable."""
