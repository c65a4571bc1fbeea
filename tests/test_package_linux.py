"""scripts/package_linux.py and installers/linux/install.sh on a fake bundle, inside tmp_path."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
import package_linux  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("zstd") is None or sys.platform != "linux", reason="needs Linux and zstd"
)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A onedir bundle's shape: the program, `refit` linking to it, an _internal folder."""
    folder = tmp_path / "dist" / "refit-studio"
    (folder / "_internal" / "torch" / "lib").mkdir(parents=True)
    program = folder / "refit-studio"
    program.write_text('#!/bin/sh\necho started as $(basename "$0")\n')
    program.chmod(0o755)
    (folder / "refit").symlink_to("refit-studio")
    (folder / "_internal" / "torch" / "lib" / "libtorch.so").write_bytes(b"\x7fELF fake")
    (folder / "_internal" / "refit_edition.json").write_text('{"edition": "cpu"}')
    return folder


def _unpack(archive: Path, into: Path) -> Path:
    into.mkdir()
    raw = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    tar_path = into / "archive.tar"
    tar_path.write_bytes(raw)
    with tarfile.open(tar_path) as tar:
        tar.extractall(into, filter="tar")
    tar_path.unlink()
    return into / "refit-studio"


def _install(
    unpacked: Path, home: Path | None, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    """install.sh with only PATH, HOME (unless None) and ``env``, run in the unpacked folder's
    parent (a relative path it wrongly used lands there, not in the repository)."""
    env = {"PATH": os.environ["PATH"], **env}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(
        ["sh", str(unpacked / "install.sh"), *args],
        env=env,
        cwd=unpacked.parent,
        capture_output=True,
        text=True,
    )


def _uninstall(prefix: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(prefix / "uninstall.sh"), *args],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )


def test_archive_members_and_link(bundle: Path, tmp_path: Path) -> None:
    archive = package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0")
    assert archive.name == "refit-studio-0.1.0-linux-x86_64-cpu.tar.zst"
    raw = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    (tmp_path / "a.tar").write_bytes(raw)
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = {member.name: member for member in tar.getmembers()}
    assert set(members) == {
        "refit-studio",
        "refit-studio/refit-studio",
        "refit-studio/refit",
        "refit-studio/_internal",
        "refit-studio/_internal/refit_edition.json",
        "refit-studio/_internal/torch",
        "refit-studio/_internal/torch/lib",
        "refit-studio/_internal/torch/lib/libtorch.so",
        "refit-studio/refit-studio.desktop",
        "refit-studio/refit-studio.png",
        "refit-studio/install.sh",
        "refit-studio/uninstall.sh",
    }
    assert members["refit-studio/refit"].issym()
    assert members["refit-studio/refit"].linkname == "refit-studio"
    assert members["refit-studio/install.sh"].mode == 0o755
    assert members["refit-studio/refit-studio"].mode & 0o111
    assert {member.uid for member in members.values()} == {0}


def test_archive_is_reproducible(bundle: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    first = package_linux.package(bundle, tmp_path / "one", "nvidia", "0.1.0").read_bytes()
    os.utime(bundle / "refit-studio")  # a newer time is clamped to SOURCE_DATE_EPOCH
    second = package_linux.package(bundle, tmp_path / "two", "nvidia", "0.1.0").read_bytes()
    assert first == second


def test_not_a_bundle_is_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="has no executable refit-studio"):
        package_linux.package(tmp_path, tmp_path / "out", "cpu", "0.1.0")
    with pytest.raises(SystemExit, match="must be one of cpu, nvidia"):
        package_linux.package(tmp_path, tmp_path / "out", "rocm", "0.1.0")


@pytest.mark.parametrize("prefix_name", ["opt/refit-studio", "my apps/refit studio"])
def test_install_and_uninstall(bundle: Path, tmp_path: Path, prefix_name: str) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / prefix_name
    done = _install(unpacked, home, "--prefix", str(prefix))
    assert done.returncode == 0, done.stderr

    program = prefix / "refit-studio"
    assert os.access(program, os.X_OK)
    assert prefix.stat().st_mode & 0o777 == unpacked.stat().st_mode & 0o777
    assert (prefix / "refit").is_symlink()
    assert os.readlink(prefix / "refit") == "refit-studio"
    desktop = home / ".local/share/applications/refit-studio.desktop"
    icon = home / ".local/share/icons/hicolor/256x256/apps/refit-studio.png"
    assert icon.read_bytes() == package_linux.ICON.read_bytes()
    entry = dict(line.split("=", 1) for line in desktop.read_text().splitlines() if "=" in line)
    quoted = '"' + str(program) + '"' if " " in str(program) else str(program)
    assert entry["Exec"] == quoted
    assert entry["TryExec"] == str(program)
    assert entry["Icon"] == str(icon)
    for name in ("refit", "refit-studio"):
        link = home / ".local/bin" / name
        assert link.resolve() == program.resolve()
        ran = subprocess.run([str(link)], capture_output=True, text=True, check=True)
        assert ran.stdout.strip() == f"started as {name}"

    gone = subprocess.run(
        ["sh", str(prefix / "uninstall.sh")],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert gone.returncode == 0, gone.stderr
    assert not desktop.exists()
    assert not icon.exists()
    assert not prefix.exists()
    assert not (home / ".local/bin/refit").is_symlink()
    assert not (home / ".local/bin/refit-studio").is_symlink()


def test_install_refuses_a_foreign_folder(bundle: Path, tmp_path: Path) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    done = _install(unpacked, home, "--prefix", str(foreign))
    assert done.returncode == 1
    assert "is not a Refit Studio install" in done.stderr
    assert (foreign / "keep.txt").read_text() == "mine"


def test_reinstall_replaces_the_previous_install(bundle: Path, tmp_path: Path) -> None:
    unpacked = _unpack(
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x"
    )
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "opt" / "refit-studio"
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    (prefix / "stale.txt").write_text("from the old version")
    with (prefix / ".refit-studio-files").open("a") as listed:
        listed.write("./stale.txt\n")
    (prefix / "notes.txt").write_text("the user's own")
    again = _install(unpacked, home, "--prefix", str(prefix))
    assert again.returncode == 0, again.stderr
    assert not (prefix / "stale.txt").exists()
    assert (prefix / "notes.txt").read_text() == "the user's own"
    assert (home / ".local/share/applications/refit-studio.desktop").exists()
    assert os.access(prefix / "refit-studio", os.X_OK)
    assert not list(prefix.parent.glob("*.partial.*"))
    # The new install's list is the program's files, not the user's.
    assert "./notes.txt" not in (prefix / ".refit-studio-files").read_text().splitlines()


def test_appdir_layout(bundle: Path, tmp_path: Path) -> None:
    made = package_linux.appdir(bundle, tmp_path / "out")
    assert os.access(made / "AppRun", os.X_OK)
    assert (made / "usr/lib/refit-studio/refit").is_symlink()
    entry = (made / "refit-studio.desktop").read_text().splitlines()
    assert "Exec=refit-studio" in entry
    assert not [line for line in entry if line.startswith("TryExec=")]
    assert os.readlink(made / ".DirIcon") == "refit-studio.png"
    cases = (
        ("refit", "refit"),
        ("/home/me/bin/refit", "refit"),
        ("-refit", "refit-studio"),  # was: basename took it for an option
        ("/x/Refit.AppImage", "refit-studio"),
    )
    for argv0, expected in cases:
        env = {"APPDIR": str(made), "ARGV0": argv0, "PATH": os.environ["PATH"]}
        ran = subprocess.run([str(made / "AppRun")], env=env, capture_output=True, text=True)
        assert ran.stdout.strip() == f"started as {expected}"


# --- A hostile user, a hostile environment ------------------------------------------------------


@pytest.fixture
def unpacked(bundle: Path, tmp_path: Path) -> Path:
    return _unpack(package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0"), tmp_path / "x")


def _exec_program(value: str) -> str:
    """The program a desktop entry's Exec value names (the specification's two unescapings)."""
    unescaped = re.sub(r"\\(.)", lambda m: {"s": " ", "n": "\n", "\\": "\\"}[m.group(1)], value)
    unescaped = unescaped.replace("%%", "%")
    if not unescaped.startswith('"'):
        return unescaped
    assert unescaped.endswith('"'), value
    return re.sub(r'\\([\\"`$])', r"\1", unescaped[1:-1])


def _everything(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


@pytest.mark.parametrize(
    "name",
    [
        'it\'s "quoted"',
        "$(touch PWNED) `touch PWNED2`",
        "-rf",
        "--prefix=x",
        "50% \\ back*slash?",
        "tab\there",
        "trailing-slashes//",
    ],
)
def test_hostile_prefix_names(unpacked: Path, tmp_path: Path, name: str) -> None:
    home = tmp_path / "home with spaces"
    home.mkdir()
    work = tmp_path / "cwd"
    work.mkdir()
    # Relative, as typed at a prompt: a leading dash must not become an option of cp, rm, ls...
    done = subprocess.run(
        ["sh", str(unpacked / "install.sh"), "--prefix", name],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    prefix = work / name.rstrip("/")
    program = prefix / "refit-studio"
    entry = home / ".local/share/applications/refit-studio.desktop"
    lines = dict(line.split("=", 1) for line in entry.read_text().splitlines() if "=" in line)
    assert _exec_program(lines["Exec"]) == str(program)
    ran = subprocess.run([str(home / ".local/bin/refit")], capture_output=True, text=True)
    assert ran.stdout.strip() == "started as refit"
    assert not list(tmp_path.rglob("PWNED*"))

    gone = _uninstall(prefix, home)
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists()
    assert _everything(work) == set()
    assert not entry.exists()


def test_a_line_break_in_the_prefix_is_refused(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    done = _install(unpacked, home, "--prefix", str(tmp_path / "a\nb"))
    assert done.returncode == 1
    assert done.stderr == "install.sh: folder names with a line break are not supported.\n"
    assert not (tmp_path / "a\nb").exists()


def test_home_unset_or_relative(unpacked: Path, tmp_path: Path) -> None:
    for home in (None, "", "relative/home"):
        env = {} if home is None else {"HOME": home}
        done = _install(unpacked, None, **env)
        assert done.returncode == 1
        assert done.stderr.startswith("install.sh: HOME is not set to an absolute folder")
        assert len(done.stderr.splitlines()) == 1
    # Everything given: no HOME needed.
    data = tmp_path / "data"
    done = _install(
        unpacked,
        None,
        f"--prefix={tmp_path / 'p'}",
        f"--bindir={tmp_path / 'bin'}",
        XDG_DATA_HOME=str(data),
    )
    assert done.returncode == 0, done.stderr
    assert (data / "applications/refit-studio.desktop").exists()
    assert (tmp_path / "bin/refit").is_symlink()


def test_home_with_spaces_and_the_default_prefix(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "my home"
    home.mkdir()
    assert _install(unpacked, home).returncode == 0
    assert os.access(home / ".local/opt/refit-studio/refit-studio", os.X_OK)
    assert _uninstall(home / ".local/opt/refit-studio", home).returncode == 0
    assert not (home / ".local/opt/refit-studio").exists()


def test_odd_xdg_data_home(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # Relative: ignored, as the XDG base directory specification says.
    done = _install(unpacked, home, "--prefix", str(tmp_path / "p"), XDG_DATA_HOME="rel")
    assert done.returncode == 0, done.stderr
    assert (home / ".local/share/applications/refit-studio.desktop").exists()
    assert not (unpacked.parent / "rel").exists()
    # A file, not a folder: one sentence, and nothing copied.
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    done = _install(unpacked, home, "--prefix", str(tmp_path / "q"), XDG_DATA_HOME=str(a_file))
    assert done.returncode == 1
    assert done.stderr.startswith("install.sh: cannot write to the folder ")
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize("target", ["home", "/"])
def test_a_prefix_that_links_to_home_or_root(unpacked: Path, tmp_path: Path, target: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    link = tmp_path / "link"
    link.symlink_to(home if target == "home" else "/")
    for prefix in (str(link), f"{link}/", "/"):
        done = _install(unpacked, home, "--prefix", prefix)
        assert done.returncode == 1
        assert "is a link" in done.stderr or "is not a Refit Studio install" in done.stderr
        assert (home / "keep.txt").read_text() == "mine"


def test_a_folder_with_a_forged_record_is_not_removed(unpacked: Path, tmp_path: Path) -> None:
    """Before: install.sh saw .refit-studio-install in the prefix and ran rm -rf on it."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("mine")
    (home / ".refit-studio-install").write_text("desktop=/nonexistent\n")
    done = _install(unpacked, home, "--prefix", str(home))
    assert done.returncode == 1
    assert "could not remove the previous install" in done.stderr
    assert (home / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob("home.partial.*"))


def test_existing_commands_in_the_bin_folder(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    bindir = home / ".local/bin"
    bindir.mkdir(parents=True)
    (bindir / "refit").write_text("#!/bin/sh\necho mine\n")
    elsewhere = tmp_path / "other-refit-studio"
    elsewhere.write_text("another program")
    (bindir / "refit-studio").symlink_to(elsewhere)
    prefix = tmp_path / "p"
    done = _install(unpacked, home, "--prefix", str(prefix))
    assert done.returncode == 0, done.stderr
    assert "refit exists and is not a link; left as it is" in done.stderr
    assert "links to " + str(elsewhere) + ", not to Refit Studio; left as it is" in done.stderr
    assert (bindir / "refit").read_text() == "#!/bin/sh\necho mine\n"
    assert os.readlink(bindir / "refit-studio") == str(elsewhere)
    assert _uninstall(prefix, home).returncode == 0
    assert (bindir / "refit").read_text() == "#!/bin/sh\necho mine\n"
    assert os.readlink(bindir / "refit-studio") == str(elsewhere)
    assert elsewhere.read_text() == "another program"

    # A link that leads nowhere (a removed install) or into another install is replaced.
    (bindir / "refit").unlink()
    (bindir / "refit").symlink_to(tmp_path / "gone/refit")
    (bindir / "refit-studio").unlink()
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    other = tmp_path / "q"
    assert _install(unpacked, home, "--prefix", str(other)).returncode == 0
    for name in ("refit", "refit-studio"):
        assert os.readlink(bindir / name) == str(other / name)


def test_uninstall_keeps_the_users_files_and_runs_twice(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "p"
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    (prefix / "runs").mkdir()
    (prefix / "runs" / "model.pt").write_text("a week of training")
    (prefix / "_internal" / "my-notes.txt").write_text("mine")

    # --help and an unknown option remove nothing.
    assert _uninstall(prefix, home, "--help").returncode == 0
    assert _uninstall(prefix, home, "--force").returncode == 1
    assert os.access(prefix / "refit-studio", os.X_OK)

    assert _uninstall(prefix, home, "--keep-folder").returncode == 0
    assert _uninstall(prefix, home, "--keep-folder").returncode == 0
    assert not (home / ".local/bin/refit").is_symlink()
    assert os.access(prefix / "refit-studio", os.X_OK)

    gone = _uninstall(prefix, home)
    assert gone.returncode == 0, gone.stderr
    assert "left with the files in it that it did not install" in gone.stdout
    assert _everything(prefix) == {"runs", "runs/model.pt", "_internal", "_internal/my-notes.txt"}
    # Its uninstall.sh is gone with it; a copy run there finds no install and removes nothing.
    again = subprocess.run(
        [
            "sh",
            "-c",
            f'cp "$1" "{prefix}/uninstall.sh" && sh "{prefix}/uninstall.sh"',
            "sh",
            str(unpacked / "uninstall.sh"),
        ],
        env={"HOME": str(home), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1
    assert "is not a Refit Studio install made by install.sh" in again.stderr
    assert (prefix / "runs" / "model.pt").read_text() == "a week of training"


def test_a_tampered_record_removes_nothing_outside(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    prefix = tmp_path / "p"
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    victims = tmp_path / "victims"
    (victims / "applications").mkdir(parents=True)
    (victims / "icons/hicolor/256x256/apps").mkdir(parents=True)
    passwd = victims / "passwd"
    bashrc = home / ".bashrc"
    foreign_entry = victims / "applications/refit-studio.desktop"
    foreign_icon = victims / "icons/hicolor/256x256/apps/refit-studio.png"
    foreign_link = victims / "refit"
    for path in (passwd, bashrc, foreign_entry, foreign_icon):
        path.write_text("precious")
    foreign_link.symlink_to(passwd)
    record = prefix / ".refit-studio-install"
    record.write_text(
        record.read_text()
        + f"desktop={passwd}\nicon={bashrc}\nlink={passwd}\nlink={foreign_link}\n"
        + f"desktop={foreign_entry}\nicon={foreign_icon}\nrm={victims}\n../relative\n"
    )
    with (prefix / ".refit-studio-files").open("a") as listed:
        listed.write(f"{victims}\n{passwd}\n../victims\n./../victims/passwd\n")
    gone = _uninstall(prefix, home)
    assert gone.returncode == 0, gone.stderr
    assert not prefix.exists()
    for path in (passwd, bashrc, foreign_entry, foreign_icon):
        assert path.read_text() == "precious"
    assert foreign_link.is_symlink()
    assert f"left {foreign_entry}: it is not the menu entry of this install." in gone.stderr
    assert not (home / ".local/share/applications/refit-studio.desktop").exists()


def test_uninstall_does_not_follow_links_out_of_the_install(unpacked: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "torch").mkdir(parents=True)
    (home / "torch" / "lib").mkdir()
    (home / "torch" / "lib" / "libtorch.so").write_text("the user's")
    prefix = tmp_path / "p"
    assert _install(unpacked, home, "--prefix", str(prefix)).returncode == 0
    shutil.rmtree(prefix / "_internal" / "torch")
    (prefix / "_internal" / "torch").symlink_to(home / "torch")
    assert _uninstall(prefix, home).returncode == 0
    assert (home / "torch" / "lib" / "libtorch.so").read_text() == "the user's"
    assert not prefix.exists()


def test_uninstall_refuses_home(unpacked: Path, tmp_path: Path) -> None:
    """An uninstall.sh copied, with a record, into the home folder never empties it."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("uninstall.sh", "refit-studio"):
        shutil.copy2(unpacked / name, home / name)
    (home / ".refit-studio-install").write_text("")
    (home / ".refit-studio-files").write_text("./keep.txt\n")
    (home / "keep.txt").write_text("mine")
    gone = _uninstall(home, home)
    assert gone.returncode == 1
    assert "not a folder Refit Studio can have been installed in" in gone.stderr
    assert (home / "keep.txt").read_text() == "mine"


# --- package_linux: what cannot go into an archive ---------------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda b: (b / "_internal" / "up").symlink_to("../../.."), "outside the bundle"),
        (lambda b: (b / "_internal" / "etc").symlink_to("/etc"), "absolute path /etc"),
        (lambda b: (b / "_internal" / "two\nlines.py").write_text(""), "control character"),
        (lambda b: os.mkfifo(b / "_internal" / "fifo"), "not a file, a folder or a link"),
        (lambda b: (b / ".refit-studio-files").write_text(""), "already holds"),
        (lambda b: (b / "install.sh").symlink_to("nowhere"), "already holds install.sh"),
    ],
)
def test_unsafe_bundle_contents_are_refused(
    bundle: Path, tmp_path: Path, make, message: str
) -> None:
    make(bundle)
    with pytest.raises(SystemExit, match=message):
        package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0")
    assert not list((tmp_path / "out").glob("*"))


def test_archive_is_safe_to_extract(bundle: Path, tmp_path: Path) -> None:
    """Every member under refit-studio/, no '..', links inside: Python's strict 'data' filter
    (what a careful extractor applies) takes it all."""
    (bundle / "_internal" / "libz.so.1").symlink_to("torch/lib/libtorch.so")
    archive = package_linux.package(bundle, tmp_path / "out", "cpu", "0.1.0")
    raw = subprocess.run(["zstd", "-dc", str(archive)], check=True, capture_output=True).stdout
    (tmp_path / "a.tar").write_bytes(raw)
    with tarfile.open(tmp_path / "a.tar") as tar:
        for member in tar.getmembers():
            assert member.name == "refit-studio" or member.name.startswith("refit-studio/")
            assert ".." not in member.name.split("/")
        tar.extractall(tmp_path / "into", filter="data")
    assert (tmp_path / "into/refit-studio/_internal/libz.so.1").read_bytes() == b"\x7fELF fake"


# --- refit_entry: which program argv[0] names ---------------------------------------------------


@pytest.mark.parametrize(
    ("argv0", "cli"),
    [
        ("refit", True),
        ("refit.exe", True),
        ("REFIT", True),
        ("C:\\Program Files\\Refit Studio\\refit.EXE", True),
        ("/home/me/.local/bin/refit", True),
        ("./refit", True),
        ("refit-studio", False),
        ("refit-studio-old", False),
        ("/opt/refit/refit-studio", False),
        ("refit.sh", False),
        ("", False),
    ],
)
def test_entry_dispatch(argv0: str, cli: bool, monkeypatch) -> None:
    spec = importlib.util.spec_from_file_location(
        "refit_entry", ROOT / "scripts" / "pyinstaller" / "refit_entry.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [argv0])
    if sys.platform != "win32" and "\\" in argv0:
        # os.path is posixpath here; Windows paths are the Windows build's to check.
        pytest.skip("a Windows path")
    assert module._started_as_cli() is cli


def test_install_refuses_a_folder_with_a_line_break_in_a_name(
    unpacked: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (unpacked / "_internal" / "two\nlines").write_text("")
    done = _install(unpacked, home, "--prefix", str(tmp_path / "p"))
    assert done.returncode == 1
    assert "holds a file name with a line break" in done.stderr
    assert not (tmp_path / "p").exists()
