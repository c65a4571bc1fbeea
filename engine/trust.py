"""Whether code shipped with a model folder may run: the one place that decides.

A Hugging Face folder can ship Python files that transformers imports when a config file's
``auto_map`` names them. Such code runs only when the person at the keyboard allowed it, by one
of two means:

- ``--allow-remote-code`` on the current command (a grant for this process and command only), or
- the per-user allow-list: model folders the user allowed (``refit trust FOLDER`` or the app's
  "Allow code shipped with this model" checkbox), kept by the SHA-256 of their code-bearing files,
  so a folder whose code changed after it was allowed is no longer allowed.

Nothing read from a file decides it: not a run's config.json, not an export's refit_model.json,
not a replayed config. Those may record that remote code was asked for; that is all.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.code_references import (
    auto_map_references,
    code_reference_problem,
    reached_code_files,
)
from engine.models.errors import ModelError
from engine.safe_read import NotReadableError, open_capped

FLAG = "--allow-remote-code"
CHECKBOX = "Allow code shipped with this model"
CONFIG_DIR_ENV = "REFIT_CONFIG_DIR"
ALLOW_LIST_NAME = "trusted_models.json"
_SKIPPED_DIRS = {"__pycache__", ".git", ".cache"}

_process_grant = False


class RemoteCodeRefused(ModelError):
    """A model folder ships code the user has not allowed to run."""


@dataclass(frozen=True)
class TrustedModel:
    """One allow-list entry: the folder's code hash, where it was, and when it was allowed."""

    sha256: str
    folder: str
    added: str


# -- what a folder ships ------------------------------------------------------------------------


_MAX_HASHED = 4 * 1024**3  # no code or config file is this large


def code_requests(folder: Path) -> list[str]:
    """Names of the folder's config files whose ``auto_map`` asks transformers to import code
    shipped with the model (config.json, tokenizer_config.json, processor configs, ...)."""
    asking = []
    for path in _top_level_json(folder):
        data = _read_json(path)
        if isinstance(data, dict) and data.get("auto_map"):
            asking.append(path.name)
    return asking


def code_hash(folder: Path) -> str:
    """SHA-256 over the folder's code-bearing files: every .py file below it, every .json
    file in it (where transformers finds ``auto_map``) and every file its auto_map references
    reach, with their relative paths."""
    folder = Path(folder)
    files = sorted(
        set(_top_level_json(folder)) | set(_python_files(folder)) | set(_reached_code(folder))
    )
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        try:  # a file swapped for a pipe or a device is never waited on, and hashes differently
            with open_capped(path, _MAX_HASHED, what="model file") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except NotReadableError as exc:
            digest.update(f"<not read: {exc.code}>".encode())
        digest.update(b"\0")
    return digest.hexdigest()


def _reached_code(folder: Path) -> list[Path]:
    refs = [
        ref for path in _top_level_json(folder) for ref in auto_map_references(_read_json(path))
    ]
    return reached_code_files(folder, refs)


def _top_level_json(folder: Path) -> list[Path]:
    try:
        return [p for p in Path(folder).iterdir() if p.suffix == ".json" and p.is_file()]
    except OSError:
        return []


def _python_files(folder: Path) -> list[Path]:
    found = []
    for root, dirs, files in os.walk(folder):  # never follows links to folders
        dirs[:] = [d for d in dirs if d not in _SKIPPED_DIRS]
        found += [Path(root) / f for f in files if f.endswith(".py")]
    return [p for p in found if p.is_file()]  # regular files only: no FIFOs or devices


def _read_json(path: Path) -> Any:
    from engine.safe_read import MIB, read_capped

    try:  # a pipe or a link to /dev/zero is not waited on or read
        return json.loads(read_capped(path, 64 * MIB).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None


# -- the user's choices -------------------------------------------------------------------------


@contextmanager
def process_grant(allowed: bool) -> Iterator[None]:
    """While inside, code shipped with any model may run (the user passed --allow-remote-code
    to this command); the grant ends with the block."""
    global _process_grant
    before = _process_grant
    _process_grant = bool(allowed)
    try:
        yield
    finally:
        _process_grant = before


def allow_list_path() -> Path:
    """The per-user allow-list file: $REFIT_CONFIG_DIR, else the user config folder (outside
    every workspace, so that no run folder or export can carry an entry in)."""
    env = os.environ.get(CONFIG_DIR_ENV)
    if env:
        return Path(env).expanduser() / ALLOW_LIST_NAME
    from platformdirs import user_config_dir

    return Path(user_config_dir("refit-studio", appauthor=False)) / ALLOW_LIST_NAME


def trusted_models() -> list[TrustedModel]:
    """The allow-list; an unreadable or damaged file allows nothing."""
    data = _read_json(allow_list_path())
    entries = data.get("models") if isinstance(data, dict) else None
    out = []
    for item in entries if isinstance(entries, list) else []:
        if isinstance(item, dict) and isinstance(item.get("sha256"), str):
            out.append(
                TrustedModel(item["sha256"], str(item.get("folder", "")), str(item.get("added")))
            )
    return out


def trust_folder(folder: str | Path) -> TrustedModel:
    """Add the folder's current code to the allow-list (an explicit user action only)."""
    folder = _model_folder(folder)
    refuse_code_outside(folder, str(folder), code_requests(folder))
    entry = TrustedModel(
        code_hash(folder), str(folder), datetime.now().isoformat(timespec="seconds")
    )
    kept = [t for t in trusted_models() if t.sha256 != entry.sha256 and t.folder != entry.folder]
    _write_allow_list([*kept, entry])
    return entry


def untrust(what: str | Path) -> int:
    """Remove entries by folder or by hash (a prefix of 8 or more characters); returns how
    many were removed."""
    text = str(what)
    folder = str(Path(text).expanduser().resolve())
    entries = trusted_models()

    def matches(t: TrustedModel) -> bool:
        return t.folder == folder or (len(text) >= 8 and t.sha256.startswith(text.lower()))

    kept = [t for t in entries if not matches(t)]
    if len(kept) != len(entries):
        _write_allow_list(kept)
    return len(entries) - len(kept)


def is_trusted(folder: str | Path) -> bool:
    """Whether the folder's code as it is now is on the allow-list."""
    hashes = {t.sha256 for t in trusted_models()}
    return bool(hashes) and code_hash(Path(folder)) in hashes


def _write_allow_list(entries: list[TrustedModel]) -> None:
    from engine.files import write_json_atomic

    write_json_atomic(allow_list_path(), {"version": 1, "models": [asdict(t) for t in entries]})


def _model_folder(folder: str | Path) -> Path:
    try:
        path = Path(folder).expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a loop of links (Python < 3.13)
        raise ModelError(
            f"{folder} is a link in a loop of links, not a model folder; choose the folder that "
            "holds the model's config.json."
        ) from exc
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelError(
            f"{folder} is not a Hugging Face model folder (it has no config.json); choose the "
            "folder that holds the model's config.json."
        )
    return path


# -- the decision -------------------------------------------------------------------------------


def model_folder(backbone: str) -> Path | None:
    """The local Hugging Face folder a backbone name points to (an 'hf:ID' in the cache, or a
    folder with config.json), or None for catalog, timm and torchvision models, which ship no
    code."""
    if backbone.startswith("hf:"):
        from engine.models.hf_files import cached_hf_folder

        return cached_hf_folder(backbone[len("hf:") :])
    path = Path(backbone).expanduser()
    return path if (path / "config.json").is_file() else None


def check_model(backbone: str, *, asked: bool = False) -> None:
    """Raise RemoteCodeRefused now, before any work starts, when the backbone ships code the
    user did not allow (the loaders check again when they load it)."""
    folder = model_folder(backbone)
    if folder is not None:
        remote_code_kwargs(folder, backbone, asked=asked)


def remote_code_kwargs(folder: Path, model: str, *, asked: bool = False) -> dict[str, bool]:
    """``trust_remote_code`` for transformers' loaders of ``folder``: True only when the folder
    ships code and the user allowed it; raises RemoteCodeRefused when it ships code the user
    did not allow. ``asked`` (a config's record of a request) is named in the refusal, never
    obeyed."""
    asking = code_requests(folder)
    if not asking:
        return {"trust_remote_code": False}
    refuse_code_outside(folder, model, asking)
    if _process_grant or is_trusted(folder):
        return {"trust_remote_code": True}
    raise RemoteCodeRefused(_refusal(folder, model, asking, asked=asked))


def refuse_code_outside(folder: Path, model: str, asking: list[str]) -> None:
    """Raise RemoteCodeRefused when an auto_map reference leaves the folder: code of another
    repository ("other/repo--modeling.Model"), an absolute path, "..", or a sub-folder that is a
    link; no hash of this folder covers such code, so allowing the folder would not cover it."""
    for name in asking:
        for ref in auto_map_references(_read_json(folder / name)):
            why = code_reference_problem(folder, ref)
            if why is not None:
                raise RemoteCodeRefused(
                    f"{model} ({folder}) asks in {name} to run code {why} ({ref!r}); Refit "
                    "Studio runs only code that is inside the model folder itself."
                )


def _refusal(folder: Path, model: str, asking: list[str], *, asked: bool) -> str:
    allowed_before = any(t.folder == str(Path(folder).resolve()) for t in trusted_models())
    why = (
        "its files changed since you allowed it"
        if allowed_before
        else "a saved config asks for it, but only you can allow that"
        if asked
        else "you did not allow remote code for it"
    )
    return (
        f"{model} ({folder}) ships Python code that would run on this computer "
        f"(auto_map in {', '.join(asking)}), and {why}; if you trust its author, pass {FLAG} "
        f"to this command, run 'refit trust {folder}', or tick '{CHECKBOX}' on the Model page."
    )
