"""What `--track` accepts: ``tensorboard`` or ``mlflow:URI``, parsed and checked before a run
starts, with any password in a URI masked wherever the URI is shown."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.config import ConfigError

FORMS = (
    "`tensorboard` (event files in the run folder) or `mlflow:URI` (e.g. mlflow:http://host:5000)"
)
MAX_URI = 2000
_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<auth>[^/@\s]*@)")
_SCHEMES = ("http", "https", "file", "sqlite", "databricks", "postgresql", "mysql", "mssql")


class TrackError(ConfigError):
    """A `--track` value that is neither form, or a tracker that cannot be used here."""


@dataclass(frozen=True)
class TrackTarget:
    """One place a run is tracked: ``kind`` is "tensorboard" or "mlflow"; ``uri`` is the MLflow
    tracking URI ("" for TensorBoard), kept as given (it may hold a password: show ``shown``)."""

    kind: str
    uri: str = ""

    @property
    def shown(self) -> str:
        """The target as logs and files may show it: a password in the URI masked."""
        return "tensorboard" if self.kind == "tensorboard" else f"mlflow:{mask_uri(self.uri)}"

    @property
    def argument(self) -> str:
        """The `--track` value that parses back to this target (unmasked: for a command line
        that starts the run, never for a log)."""
        return "tensorboard" if self.kind == "tensorboard" else f"mlflow:{self.uri}"


def mask_uri(uri: str) -> str:
    """``http://user:secret@host`` -> ``http://***@host``: credentials never reach a log."""
    return _CREDENTIALS.sub(lambda m: m.group("scheme") + "***@", uri)


def parse_track(value: str) -> TrackTarget:
    """One `--track` value as a TrackTarget; anything else raises TrackError with one sentence
    naming the two forms."""
    text = value.strip()
    if text.lower() == "tensorboard":
        return TrackTarget("tensorboard")
    if len(text) > MAX_URI or any(ord(c) < 32 for c in text):
        raise TrackError(f"--track takes {FORMS}; this value is not one of them.")
    if text.lower().startswith("mlflow:") and len(text) > len("mlflow:"):
        uri = text[len("mlflow:") :]
        scheme = urlsplit(uri).scheme.lower().split("+")[0]
        if scheme not in _SCHEMES and not (scheme == "" and uri.startswith(("/", "."))):
            raise TrackError(
                f"--track {mask_uri(text)!r}: MLflow needs a tracking URI such as "
                "http://host:5000, sqlite:///PATH/mlflow.db or file:///PATH/mlruns."
            )
        return TrackTarget("mlflow", uri)
    raise TrackError(f"--track takes {FORMS}; {mask_uri(text)!r} is neither.")


def track_argument(value: str) -> TrackTarget:
    """:func:`parse_track` as an argparse ``type``: a bad value is argparse's usage error with
    the same sentence (the `refit` CLI and the torchrun worker share it)."""
    import argparse

    try:
        return parse_track(value)
    except TrackError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_track_option(parser: Any, help: str) -> None:
    """The repeatable ``--track WHERE`` option (:func:`track_argument`) on an argparse parser:
    the `refit` CLI's and the torchrun worker's."""
    parser.add_argument(
        "--track", action="append", default=[], type=track_argument, metavar="WHERE", help=help
    )


def is_file_store(uri: str) -> bool:
    """A local MLflow file store (``file://`` or a plain path)."""
    return urlsplit(uri).scheme.lower() in ("", "file")


def file_store_allowed() -> bool:
    """MLflow 3 keeps its local file store behind the MLFLOW_ALLOW_FILE_STORE switch; the user
    turns it on in their environment (read here, never set)."""
    return os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true", "yes")


def is_primary_rank() -> bool:
    """Only rank 0 of a distributed run tracks (torchrun sets RANK for every process)."""
    return os.environ.get("RANK", "0").strip() in ("", "0")
