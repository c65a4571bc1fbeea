"""Per-user keys (engine/secrets.py): made once, shared by processes that ask at the same time,
and what keys the patient hashes, so a run folder's hashes cannot be reversed by trying IDs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from engine.data.groups import GROUP_KEY_NAME, hash_group
from engine.secrets import KEY_BYTES, key_path, user_key

ROOT = Path(__file__).resolve().parents[2]


def test_a_key_is_made_once_and_kept() -> None:
    assert user_key("k.key", create=False) is None
    first = user_key("k.key")
    assert first is not None and len(first) == KEY_BYTES
    assert user_key("k.key") == first == user_key("k.key", create=False)
    assert oct(os.stat(key_path("k.key")).st_mode & 0o777) == "0o600"


def test_a_damaged_key_file_is_replaced() -> None:
    path = key_path("d.key")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"short")
    assert user_key("d.key", create=False) is None
    key = user_key("d.key")
    assert key is not None and len(key) == KEY_BYTES and path.read_bytes() == key


def test_processes_that_make_the_key_at_once_get_the_same_key() -> None:
    script = "from engine.secrets import user_key; print(user_key('race.key').hex())"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        for _ in range(4)
    ]
    keys = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert len(keys) == 1 and bytes.fromhex(keys.pop()) == user_key("race.key")


def test_patient_hashes_are_keyed_by_this_users_secret(monkeypatch, tmp_path) -> None:
    salt = "refit-group:ct"
    mine = hash_group(salt, "12345678")
    plain = hashlib.sha256(f"{salt}\x0012345678".encode()).hexdigest()[:12]
    assert mine != plain  # trying every record number against the plain hash finds nothing
    assert hash_group(salt, "12345678") == mine  # stable for this user: the split is stable
    assert user_key(GROUP_KEY_NAME, create=False) is not None
    monkeypatch.setenv("REFIT_CONFIG_DIR", str(tmp_path / "another-user"))
    assert hash_group(salt, "12345678") != mine
