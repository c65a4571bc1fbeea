"""Random keys kept per user, outside every workspace (next to the allow-list of engine/trust.py):
they sign what this user's runs trust (engine/frozen/records.py) and key the hashes that stand for
patients (engine/data/groups.py), so that neither can be made or reversed from a run folder alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.safe_read import read_capped

KEY_BYTES = 32


def key_path(name: str) -> Path:
    from engine.trust import allow_list_path

    return allow_list_path().parent / name


def user_key(name: str, *, create: bool = True) -> bytes | None:
    """This user's key ``name`` (32 random bytes), made on first use when ``create``; None when
    there is none and none can be made (a read-only home folder). Two processes that make it at
    once get the same key: the file is created exclusively, and the loser reads the winner's."""
    path = key_path(name)
    key = _read(path)
    if key is not None or not create:
        return key
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path) or _replace(path)  # a damaged key file: a new key
    except OSError:
        return None
    try:
        os.write(fd, os.urandom(KEY_BYTES))
    finally:
        os.close(fd)
    return _read(path)


def _replace(path: Path) -> bytes | None:
    from engine.files import write_bytes_atomic

    try:
        write_bytes_atomic(path, os.urandom(KEY_BYTES))
        os.chmod(path, 0o600)
    except OSError:
        return None
    return _read(path)


_seen: dict[str, tuple[tuple[int, int, int], bytes]] = {}  # path -> (its stat, its key)


def _read(path: Path) -> bytes | None:
    """The key in ``path``; read again only when the file changed (a scan hashes every image's
    patient: one stat each, not one read each)."""
    try:
        st = os.stat(path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        seen = _seen.get(str(path))
        if seen is not None and seen[0] == stamp:
            return seen[1]
        key = read_capped(path, 64, what="key file")
    except OSError:
        return None
    if len(key) != KEY_BYTES:
        return None
    _seen[str(path)] = (stamp, key)
    return key
