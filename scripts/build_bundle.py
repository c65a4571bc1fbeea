"""Build the packaged app, then use the frozen binaries as a new user would, and fail on any error.

    python scripts/build_bundle.py --edition cpu          # CPU/Apple edition (the default)
    python scripts/build_bundle.py --edition nvidia       # NVIDIA GPU edition
    python scripts/build_bundle.py --smoke-only           # test an existing dist/ folder again

Steps (each timed; the whole log is printed):

1. **Build environment**: a fresh virtual environment in ``build/venv-<edition>`` (kept between
   builds; ``--fresh-venv`` makes a new one) with the edition's torch, the project and
   PyInstaller. CPU/Apple: torch 2.13.0+cpu (the CPU-only wheel; ``--torch`` to change) and
   torchvision 0.28.0; NVIDIA GPU: torch 2.14.1 and torchvision 0.29.1 from PyPI.
2. **Build**: ``pyinstaller build.spec`` with ``REFIT_EDITION`` set, into ``dist/<edition>/``.
3. **Smoke test** of the frozen ``refit`` and ``refit-studio`` in a clean environment
   (``env -i``: no Python on the PATH, a new HOME, nothing inherited) on generated images and
   texts: ``--help``, ``--version`` (edition), ``backbones`` (the offline starters listed),
   ``scan``, a linear probe, a ``last-1`` fine-tune (loader worker processes), ``predict``,
   ``evaluate``, ``export --format all`` (the ONNX file checked in onnxruntime by the export),
   ``predict`` on the exported folder, a LoRA text run, text ``predict`` and ``export``,
   ``compare``, ``runs``, and the app started on a virtual screen (``QT_QPA_PLATFORM=offscreen``)
   and closed with SIGTERM, which must end it cleanly (exit code 0, no traceback).
4. **Size**: files and bytes of the bundle, and of its ``.tar.zst`` (``--package``).

Exit code 0 only when every step passed. Building takes 10-25 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from engine.edition import EDITIONS as EDITION_NAMES  # noqa: E402 - stdlib only

EDITIONS = {
    # edition: (torch, torchvision)
    "cpu": ("torch==2.13.0", "torchvision==0.28.0"),
    "nvidia": ("torch==2.14.1", "torchvision==0.29.1"),
}
SIZE_AIM = {"cpu": 1.5e9}  # unpacked, Linux (issue 13)
COMMAND_TIMEOUT = 900


@dataclass
class Report:
    steps: list[tuple[str, float, bool, str]] = field(default_factory=list)

    def add(self, name: str, seconds: float, ok: bool, detail: str = "") -> None:
        self.steps.append((name, seconds, ok, detail))
        mark = "ok  " if ok else "FAIL"
        print(f"[{mark}] {name} ({seconds:.1f} s){': ' + detail if detail else ''}", flush=True)

    @property
    def failed(self) -> list[str]:
        return [name for name, _, ok, _ in self.steps if not ok]


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


# -- 1. build environment -----------------------------------------------------------------------


def build_env(
    edition: str, venv: Path, fresh: bool, torch_req: str | None, torch_index: str | None
) -> Path:
    """The python of a virtual environment holding the edition's torch, the project, PyInstaller."""
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if not python.exists():
        run([sys.executable, "-m", "venv", str(venv)])
        torch, vision = EDITIONS[edition]
        run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"])
        # torch first, alone: the project's own "torch>=2.10" is then already satisfied.
        index = ["--extra-index-url", torch_index] if torch_index else []
        run([str(python), "-m", "pip", "install", "-q", *index, torch_req or torch, vision])
    # Every build, not only a new environment's first: a dependency the project added since
    # (pydicom, once) was otherwise missing from the bundle, found only by its smoke test.
    run([str(python), "-m", "pip", "install", "-q", "-e", str(ROOT), "pyinstaller>=6.11"])
    check = subprocess.run(
        [str(python), "-c", "import torch; print(torch.__version__, torch.version.cuda)"],
        capture_output=True,
        text=True,
    )
    print(f"build environment: {venv} (torch {check.stdout.strip()})", flush=True)
    if edition == "cpu" and "None" not in check.stdout:
        raise SystemExit(
            f"{venv} has a CUDA build of torch ({check.stdout.strip()}); the CPU/Apple edition "
            "needs a CPU-only torch: run again with --fresh-venv (and --torch if needed)."
        )
    return python


# -- 2. build -----------------------------------------------------------------------------------


def build(python: Path, edition: str, dist: Path, work: Path) -> Path:
    env = dict(os.environ, REFIT_EDITION=edition)
    run(
        [
            # --clean: PyInstaller otherwise reuses a cached module archive even when the
            # project's sources changed (seen: a build without the newest engine/cli/).
            str(python), "-m", "PyInstaller", str(ROOT / "build.spec"), "--noconfirm", "--clean",
            "--distpath", str(dist), "--workpath", str(work),
        ],
        cwd=ROOT,
        env=env,
    )  # fmt: skip
    return dist / "refit-studio"


# -- 3. smoke test ------------------------------------------------------------------------------


def make_images(folder: Path, per_class: int = 24, side: int = 96) -> list[Path]:
    """Two classes a linear probe separates: bright disks vs dark stripes, with noise; plus
    a grayscale PNG and an RGBA PNG so the decoders of both formats run."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = random.Random(0)
    made = []
    for cls in ("disks", "stripes"):
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = Image.new("RGB", (side + rng.randint(0, 40), side), (40, 40, 40))
            draw = ImageDraw.Draw(im)
            if cls == "disks":
                for _ in range(3):
                    x, y, r = rng.randint(10, side - 10), rng.randint(10, side - 10), 12
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=(230, 200, 60))
            else:
                for x in range(0, im.width, 12):
                    draw.rectangle((x, 0, x + 5, side), fill=(60, 90, 200))
            noise = np.random.default_rng(i).integers(0, 30, (side, im.width, 3), dtype=np.uint8)
            im = Image.fromarray(np.clip(np.asarray(im) + noise, 0, 255).astype(np.uint8))
            path = folder / cls / f"{cls}-{i:02d}.jpg"
            if i == 0:
                path = path.with_suffix(".png")
                im = im.convert("L")
            elif i == 1:
                path = path.with_suffix(".png")
                im = im.convert("RGBA")
            im.save(path)
            made.append(path)
    return made


def make_dicoms(folder: Path, per_class: int = 10) -> list[Path]:
    """Two classes of generated 12-bit CT-like DICOM slices (a bright disc or none): plain,
    RLE Lossless, JPEG 2000 and JPEG-LS files, so that pydicom's decoders found by name run in
    the bundle (the generator is the tests' own, tests/dicom_synth.py)."""
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGLSLossless

    sys.path.insert(0, str(ROOT / "tests"))
    from dicom_synth import dicom_dataset, disc_slice, write_dicom

    made = []
    for label, disc in (("disc", True), ("none", False)):
        for i in range(per_class):
            pixels = disc_slice(i + (100 if disc else 0), disc=disc)
            path = folder / label / f"img{i:02d}.dcm"
            common = {"bits_stored": 12, "slope": 1.0, "intercept": -1024.0}
            if i == 0:  # JPEG 2000 Lossless through Pillow
                ds = dicom_dataset(pixels, **common)
                buffer = io.BytesIO()
                picture = Image.fromarray(pixels.astype("uint16"))
                picture.save(buffer, "JPEG2000", irreversible=False)
                ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
                ds.PixelData = encapsulate([buffer.getvalue()])
                ds["PixelData"].VR = "OB"
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
            elif i == 2:  # JPEG-LS through pyjpegls (its encoder here, its decoder frozen)
                ds = dicom_dataset(pixels, **common)
                ds.compress(JPEGLSLossless)
                path.parent.mkdir(parents=True, exist_ok=True)
                ds.save_as(path, enforce_file_format=True)
            else:
                write_dicom(path, pixels, rle=i % 2 == 1, **common)
            made.append(path)
    return made


def make_texts(path: Path, per_class: int = 30) -> None:
    rng = random.Random(1)
    good = ["great", "excellent", "lovely", "works well", "very happy", "recommend it"]
    bad = ["broken", "terrible", "refund", "stopped working", "very poor", "waste of money"]
    rows = []
    for label, words in (("positive", good), ("negative", bad)):
        for _ in range(per_class):
            rows.append((f"The product is {rng.choice(words)} and {rng.choice(words)}.", label))
    rng.shuffle(rows)
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)


class Smoke:
    """Runs the frozen programs with ``env -i`` and records each command's outcome."""

    def __init__(self, bundle: Path, scratch: Path, report: Report) -> None:
        self.refit = bundle / ("refit.exe" if sys.platform == "win32" else "refit")
        self.app = bundle / ("refit-studio.exe" if sys.platform == "win32" else "refit-studio")
        self.scratch, self.report = scratch, report
        self.workspace = scratch / "workspace"
        home = scratch / "home"
        home.mkdir(parents=True, exist_ok=True)
        empty_bin = scratch / "empty-bin"  # the PATH: nothing on it, Python least of all
        empty_bin.mkdir(exist_ok=True)
        self.env = {"HOME": str(home), "PATH": str(empty_bin), "TMPDIR": str(scratch)}
        if sys.platform == "win32":  # Windows cannot start a program with an empty environment
            self.env.update({k: os.environ[k] for k in ("SYSTEMROOT", "TEMP") if k in os.environ})

    def refit_cmd(self, name: str, *args: str, expect: str = "") -> str:
        cmd = [str(self.refit), "--workspace", str(self.workspace), *args]
        return self._check(name, cmd, expect)

    def hostile_calls(self) -> None:
        """`refit` as install.sh leaves it (a link to the bundle's link to the program), and in an
        environment with no usable locale or temporary folder: a result, not a traceback."""
        chain = self.scratch / "bin" / "refit"
        chain.parent.mkdir(exist_ok=True)
        chain.unlink(missing_ok=True)
        chain.symlink_to(self.refit)
        self._check("refit --version through a link", [str(chain), "--version"], "Refit Studio")
        hostile = {
            "LC_ALL=POSIX": {"LC_ALL": "POSIX"},
            "an unknown locale": {"LC_ALL": "xx_XX.UTF-8", "LANG": "xx_XX.UTF-8"},
            "a TMPDIR that does not exist": {"TMPDIR": str(self.scratch / "missing")},
        }
        for label, extra in hostile.items():
            self._check(
                f"refit backbones with {label}", [str(self.refit), "backbones"],
                "efficientnet_lite0", env={**self.env, **extra},
            )  # fmt: skip

    def _check(
        self, name: str, cmd: list[str], expect: str, env: dict[str, str] | None = None
    ) -> str:
        started = time.perf_counter()
        try:
            done = subprocess.run(
                cmd, env=env or self.env, capture_output=True, text=True, errors="replace",
                timeout=COMMAND_TIMEOUT, cwd=self.scratch, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            self.report.add(name, time.perf_counter() - started, False, "timed out")
            return ""
        out = done.stdout + done.stderr
        seconds = time.perf_counter() - started
        problem = ""
        if done.returncode != 0:
            problem = f"exit code {done.returncode}"
        elif "Traceback (most recent call last)" in out:
            problem = "a traceback was printed"
        elif expect and expect not in out:
            problem = f"{expect!r} not in the output"
        if problem:
            print(out[-4000:], flush=True)
        self.report.add(name, seconds, not problem, problem or _last_line(out))
        return out

    def newest_run(self) -> str:
        folder = self.workspace / "runs"
        runs = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
        return runs[-1] if runs else "missing-run"

    def app_starts_and_closes(self) -> None:
        """The windowed app on a virtual screen: it must come up, print its ready line, and end
        with exit code 0 on SIGTERM (as on logout)."""
        started = time.perf_counter()
        env = dict(self.env, QT_QPA_PLATFORM="offscreen")
        proc = subprocess.Popen(
            [str(self.app), "--workspace", str(self.workspace)], env=env, cwd=self.scratch,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
        )  # fmt: skip
        lines: list[str] = []
        ready = False
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        while time.monotonic() < deadline and proc.poll() is None:
            chunk = proc.stdout.readline()
            if chunk:
                lines.append(chunk)
                ready = ready or "Runs are stored in" in chunk
                if ready:
                    break
            else:
                time.sleep(0.2)
        if ready:
            time.sleep(5)  # the device probe and the first pages load after the window shows
            proc.send_signal(signal.SIGTERM)
        else:
            proc.kill()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        rest = proc.stdout.read() or ""
        out = "".join(lines) + rest
        problem = ""
        if not ready:
            problem = "no ready line (the window did not come up)"
        elif proc.returncode != 0:
            problem = f"exit code {proc.returncode} after SIGTERM"
        elif "Traceback (most recent call last)" in out:
            problem = "a traceback was printed"
        if problem:
            print(out[-4000:], flush=True)
        seconds = time.perf_counter() - started
        self.report.add("refit-studio starts offscreen and closes", seconds, not problem, problem)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1][:150] if lines else ""


def smoke_test(bundle: Path, edition: str, report: Report) -> None:
    scratch = Path(tempfile.mkdtemp(prefix="refit-smoke-"))
    try:
        images = make_images(scratch / "images")
        texts = scratch / "reviews.csv"
        make_texts(texts)
        s = Smoke(bundle, scratch, report)
        s.refit_cmd("refit --help", "--help", expect="train")
        s.refit_cmd("refit --version", "--version", expect=EDITION_NAMES[edition])
        s.refit_cmd("refit backbones", "backbones", expect="efficientnet_lite0")
        if sys.platform != "win32":
            s.hostile_calls()
        out = s.refit_cmd("refit backbones (offline starters)", "backbones")
        if "offline" not in out.split("efficientnet_lite0", 1)[-1].splitlines()[0]:
            report.add("offline image starter listed as offline", 0, False, "not offline")
        s.refit_cmd("refit scan images", "scan", str(scratch / "images"), expect="usable images")
        s.refit_cmd(
            "refit scan --review (label errors)", "scan", str(scratch / "images"), "--review",
            expect="nothing was relabelled",
        )  # fmt: skip
        s.refit_cmd(
            "refit train --method linear-probe", "train", str(scratch / "images"),
            "--method", "linear-probe", expect="Run completed",
        )  # fmt: skip
        probe = s.newest_run()
        s.refit_cmd(
            "refit train --method last-1 (2 loader worker processes)", "train",
            str(scratch / "images"), "--method", "last-1", "--epochs", "2", "--workers", "2",
            expect="Run completed",
        )  # fmt: skip
        tuned = s.newest_run()
        s.refit_cmd("refit predict (images)", "predict", probe, str(images[5]), str(images[-5]))
        s.refit_cmd("refit evaluate", "evaluate", tuned, expect="accuracy")
        exported = scratch / "exported"
        s.refit_cmd(
            "refit export --format all", "export", tuned, "--format", "all", "--out",
            str(exported), expect="onnx",
        )  # fmt: skip
        s.refit_cmd("refit predict (exported folder)", "predict", str(exported), str(images[3]))
        s.refit_cmd("refit compare", "compare", probe, tuned, expect="McNemar")
        s.refit_cmd(
            "refit train texts --method lora", "train", str(texts), "--method", "lora",
            "--epochs", "1", expect="Run completed",
        )  # fmt: skip
        text_run = s.newest_run()
        s.refit_cmd("refit predict (texts)", "predict", text_run, "--text", "It broke at once.")
        s.refit_cmd(
            "refit export (text run)", "export", text_run, "--format", "all", "--out",
            str(scratch / "text-exported"),
        )  # fmt: skip
        dicoms = make_dicoms(scratch / "dicom")
        s.refit_cmd("refit scan (DICOM)", "scan", str(scratch / "dicom"), expect="usable images")
        s.refit_cmd(
            "refit train DICOM --dicom-window lung", "train", str(scratch / "dicom"), "--method",
            "linear-probe", "--dicom-window", "lung", expect="Run completed",
        )  # fmt: skip
        s.refit_cmd("refit predict (DICOM)", "predict", s.newest_run(), str(dicoms[0]))
        s.refit_cmd("refit runs", "runs", expect=probe)
        s.app_starts_and_closes()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# -- 4. size ------------------------------------------------------------------------------------


def dangling_links(folder: Path) -> list[str]:
    """Links in the bundle whose target is missing (a left-out library's alias, say)."""
    return sorted(
        str(path.relative_to(folder))
        for path in folder.rglob("*")
        if path.is_symlink() and not path.exists()
    )


def size_of(folder: Path) -> tuple[int, int]:
    files = total = 0
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files += 1
            total += path.stat().st_size
    return files, total


def largest_parts(bundle: Path, top: int = 8) -> list[tuple[str, int]]:
    inner = bundle / "_internal" if (bundle / "_internal").is_dir() else bundle
    parts = []
    for child in inner.iterdir():
        if child.is_symlink():
            continue
        size = size_of(child)[1] if child.is_dir() else child.stat().st_size
        parts.append((child.name, size))
    return sorted(parts, key=lambda p: -p[1])[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edition", choices=sorted(EDITIONS), default="cpu")
    parser.add_argument("--python", type=Path, help="Build with this environment's python.")
    parser.add_argument("--fresh-venv", action="store_true")
    parser.add_argument("--torch", help="The torch requirement, e.g. torch==2.13.0+cpu")
    parser.add_argument(
        "--torch-index",
        help="An extra package index for torch, e.g. https://download.pytorch.org/whl/cpu "
        "(where PyPI's torch for this platform is a CUDA build and no CPU wheel is at hand).",
    )
    parser.add_argument("--dist", type=Path, help="Output folder (default dist/<edition>).")
    parser.add_argument("--smoke-only", action="store_true", help="Test an existing build.")
    parser.add_argument("--package", action="store_true", help="Also make the .tar.zst.")
    args = parser.parse_args(argv)

    report = Report()
    dist = (args.dist or ROOT / "dist" / args.edition).resolve()
    bundle = dist / "refit-studio"
    started = time.perf_counter()
    if not args.smoke_only:
        t = time.perf_counter()
        python = args.python or build_env(
            args.edition,
            ROOT / "build" / f"venv-{args.edition}",
            args.fresh_venv,
            args.torch,
            args.torch_index,
        )
        report.add("build environment", time.perf_counter() - t, True, str(python))
        t = time.perf_counter()
        try:
            build(python, args.edition, dist, ROOT / "build" / f"pyinstaller-{args.edition}")
            report.add("pyinstaller build.spec", time.perf_counter() - t, True, str(bundle))
        except subprocess.CalledProcessError as exc:
            report.add("pyinstaller build.spec", time.perf_counter() - t, False, str(exc))
            return 1
    if not bundle.is_dir():
        print(f"{bundle} does not exist: build it first (without --smoke-only).")
        return 1
    build_seconds = time.perf_counter() - started
    smoke_test(bundle, args.edition, report)

    broken = dangling_links(bundle)
    report.add("no dangling links in the bundle", 0, not broken, ", ".join(broken[:5]))
    files, total = size_of(bundle)
    print(f"\nbundle: {bundle}\n  {files:,} files, {total / 1e9:.2f} GB unpacked")
    for name, size in largest_parts(bundle):
        print(f"  {size / 1e6:9.1f} MB  {name}")
    aim = SIZE_AIM.get(args.edition)
    if aim is not None:
        report.add(
            f"size under {aim / 1e9:.1f} GB unpacked", 0, total < aim, f"{total / 1e9:.2f} GB"
        )
    if args.package:
        sys.path.insert(0, str(ROOT / "scripts"))
        from package_linux import package

        t = time.perf_counter()
        version = _project_version()
        archive = package(bundle, dist, args.edition, version)
        size = archive.stat().st_size
        report.add(
            "package .tar.zst", time.perf_counter() - t, True, f"{archive} {size / 1e6:.0f} MB"
        )
    total_min = (time.perf_counter() - started) / 60
    passed = len(report.steps) - len(report.failed)
    print(
        f"\nbuild {build_seconds / 60:.1f} min, total {total_min:.1f} min; "
        f"{passed} of {len(report.steps)} steps passed"
    )
    if report.failed:
        print("FAILED: " + "; ".join(report.failed))
        return 1
    return 0


def _project_version() -> str:
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "version"
    ]


if __name__ == "__main__":
    sys.exit(main())
