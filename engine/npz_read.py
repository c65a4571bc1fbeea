"""Reading a .npz archive within bounds: its size, each member's size and each array's declared
shape are checked before anything is inflated or allocated.

``np.load(path)["meta"]`` trusts the archive: a member whose header declares shape ``(10**13,)``
allocates terabytes (MemoryError), a 3 MB member compressed from zeros inflates to 3 GB, an
object array is a pickle. A saved-predictions file sits in a run folder anyone can hand over, so
every .npz the app reads goes through :func:`read_npz`, which raises :class:`NpzError` whose
message completes "<file> ..." in one sentence.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from numpy.lib import format as npy_format

from engine.safe_read import GIB, NotReadableError, open_capped, size_text

NPZ_FILE_LIMIT = 4 * GIB  # the archive on disk
NPZ_MEMBER_LIMIT = 2 * GIB  # one array, inflated
MAX_RATIO = 50  # the app stores arrays uncompressed (np.savez); zeros compress ~1000 to 1


class NpzError(ValueError):
    """A .npz archive that is not read; the message completes "<file> ..."."""


def read_npz(
    path: str | Path,
    names: Iterable[str],
    *,
    require: Iterable[str] = (),
    member_limit: int = NPZ_MEMBER_LIMIT,
) -> dict[str, np.ndarray]:
    """The arrays ``names`` of the .npz at ``path``; NpzError when the file is not a regular
    file, is not a whole archive, lacks one of them (or of ``require``, which are not read), or
    one is too big, a bomb or a pickle."""
    wanted = list(names)
    try:
        fh = open_capped(path, NPZ_FILE_LIMIT, what=".npz archive")
        with fh, zipfile.ZipFile(fh) as archive:
            members = {info.filename: info for info in archive.infolist()}
            missing = [n for n in [*wanted, *require] if f"{n}.npy" not in members]
            if missing:
                raise NpzError(f"lacks {', '.join(sorted(missing))}")
            return {n: _member(archive, members[f"{n}.npy"], member_limit) for n in wanted}
    except NpzError:
        raise
    except NotReadableError as exc:
        raise NpzError(exc.reason) from exc
    except MemoryError as exc:
        raise NpzError("holds arrays too large for this computer's memory") from exc
    except (OSError, zipfile.BadZipFile, EOFError, zlib.error, ValueError, KeyError) as exc:
        reason = getattr(exc, "strerror", None) or "is not a whole .npz archive"
        raise NpzError(
            reason if reason.startswith("is ") else f"cannot be read ({reason})"
        ) from exc


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> np.ndarray:
    name = info.filename
    if info.file_size > limit:
        raise NpzError(f"holds {name} of {size_text(info.file_size)}, more than {size_text(limit)}")
    if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(
        info.compress_size, 1
    ):
        raise NpzError(f"holds {name} compressed far more than any file the app writes")
    with archive.open(info) as member:
        version = npy_format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = npy_format.read_array_header_1_0(member)
        else:
            shape, fortran, dtype = npy_format.read_array_header_2_0(member)
        if dtype.hasobject:
            raise NpzError(f"holds {name} made of Python objects (a pickle), which is never loaded")
        count = 1
        for n in shape:
            count *= int(n)
        if count * dtype.itemsize > info.file_size:  # the header claims more than is stored
            raise NpzError(f"holds {name} declaring more data than the archive stores")
        data = member.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise NpzError(f"holds {name} cut short")
    array = np.frombuffer(data, dtype=dtype)
    return array.reshape(shape, order="F" if fortran else "C")
