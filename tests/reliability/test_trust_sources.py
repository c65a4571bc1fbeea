"""Trust, kept closed: the source may not gain an unsafe load or a second say over remote code.

- ``torch.load`` is called only in engine/pickles.py, and there with ``weights_only=True``;
  ``weights_only=False`` appears nowhere.
- numpy loads never allow pickles; nothing calls pickle/joblib/dill loaders.
- ``trust_remote_code`` is written only in engine/trust.py, and every transformers ``Auto*``
  loader gets its keywords from there (``**remote``), so none falls back to asking on stdin.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRUST_MODULE = "engine/trust.py"
PICKLE_MODULE = "engine/pickles.py"
_UNPICKLERS = {"load", "loads", "Unpickler"}


def violations(source: str, where: str) -> list[str]:
    """Every unsafe load or stray remote-code switch in one file's source."""
    found = []
    if "trust_remote_code" in source and where != TRUST_MODULE:
        found.append(f"{where}: trust_remote_code outside {TRUST_MODULE}")
    if "NO_WEIGHTS_ONLY" in source:
        found.append(f"{where}: turns off torch's weights-only loading")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword):
            found += _keyword(node, where)
        elif isinstance(node, ast.Call):
            found += _call(node, where)
        elif isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill", "joblib"):
            names = {a.name for a in node.names} & (_UNPICKLERS | {"load"})
            found += [f"{where}:{node.lineno}: imports {node.module}.{n}" for n in names]
    return found


def _keyword(node: ast.keyword, where: str) -> list[str]:
    value = node.value
    literal = value.value if isinstance(value, ast.Constant) else None
    if node.arg == "weights_only" and literal is not True:
        return [f"{where}:{value.lineno}: weights_only is not True"]
    if node.arg == "allow_pickle" and literal is not False:
        return [f"{where}:{value.lineno}: allow_pickle is not False"]
    return []


def _call(node: ast.Call, where: str) -> list[str]:
    func = node.func
    if not isinstance(func, ast.Attribute):
        return []
    owner = func.value.id if isinstance(func.value, ast.Name) else ""
    keywords = {k.arg for k in node.keywords}
    line = f"{where}:{node.lineno}"
    if owner == "torch" and func.attr == "load":
        if where != PICKLE_MODULE:
            return [f"{line}: torch.load outside {PICKLE_MODULE}"]
        return [] if "weights_only" in keywords else [f"{line}: torch.load without weights_only"]
    if owner in ("pickle", "cPickle", "dill", "joblib") and func.attr in _UNPICKLERS:
        return [f"{line}: {owner}.{func.attr}"]
    if func.attr == "read_pickle":
        return [f"{line}: read_pickle"]
    if owner in ("np", "numpy") and func.attr == "load" and "allow_pickle" not in keywords:
        return [f"{line}: np.load without allow_pickle=False"]
    loader = owner.startswith("Auto") and func.attr in ("from_pretrained", "from_config")
    if loader and None not in keywords:  # None: the **remote_code_kwargs(...) of engine/trust.py
        return [f"{line}: {owner}.{func.attr} without engine.trust's keywords"]
    return []


def source_files() -> list[Path]:
    return sorted(p for d in ("engine", "desktop") for p in (ROOT / d).rglob("*.py"))


@pytest.mark.slow
def test_engine_and_desktop_load_nothing_unsafely():
    files = source_files()
    assert len(files) > 50 and (ROOT / TRUST_MODULE) in files and (ROOT / PICKLE_MODULE) in files
    found = []
    for path in files:
        where = path.relative_to(ROOT).as_posix()
        found += violations(path.read_text(encoding="utf-8"), where)
    assert not found, "\n".join(found)


def test_the_one_torch_load_is_weights_only():
    text = (ROOT / PICKLE_MODULE).read_text(encoding="utf-8")
    calls = [
        n
        for n in ast.walk(ast.parse(text))
        if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "load"
    ]
    assert len(calls) == 1
    (keyword,) = [k for k in calls[0].keywords if k.arg == "weights_only"]
    assert keyword.value.value is True


def test_the_scan_catches_each_kind_of_hole():
    """The scan itself can fail: each line below is one hole it must report."""
    holes = [
        "torch.load(path)",
        "torch.load(path, weights_only=False)",
        "x = dict(weights_only=False)",
        "np.load(path, allow_pickle=True)",
        "np.load(path)",
        "pickle.loads(data)",
        "joblib.load(path)",
        "pd.read_pickle(path)",
        "from pickle import load",
        "AutoModel.from_pretrained(folder, trust_remote_code=True)",
        "AutoTokenizer.from_pretrained(folder)",
        "kwargs = {'trust_remote_code': True}",
        "os.environ['TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD'] = '1'",
    ]
    for hole in holes:
        assert violations(hole, "engine/somewhere.py"), hole
    assert not violations("AutoModel.from_pretrained(folder, **remote)", "engine/x.py")
    assert not violations("np.load(path, allow_pickle=False)", "engine/x.py")
    assert not violations("torch.load(p, weights_only=True)", PICKLE_MODULE)
