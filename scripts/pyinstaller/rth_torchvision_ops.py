"""PyInstaller runtime hook of the CPU/Apple edition: torchvision without its C++ operators.

PyPI has no CPU-only torchvision for Linux: its wheels link the CUDA runtime, so the CPU edition
(built on a CPU-only torch) leaves torchvision's operator libraries out. torchvision's Python then
still imports, except for ``torchvision/_meta_registrations.py``, which registers shape functions
for ``torchvision::nms`` and ``torchvision::qnms`` without asking whether the operators exist and
fails with "operator torchvision::nms does not exist". Just before that module runs, this hook
declares the two schemas (exactly torchvision's) when the operators are missing. Refit Studio
never calls them (they are object-detection operators); calling one still raises torchvision's
own "Couldn't load custom C++ ops" error. Nothing is done when the operators did load.
"""

import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_kept = []  # a torch.library.Library unregisters its definitions when collected


class _DeclareMissingTorchvisionOps:
    def find_spec(self, name, path=None, target=None):
        if name != "torchvision._meta_registrations":
            return None
        sys.meta_path.remove(self)
        import torch
        import torchvision.extension

        if not torchvision.extension._has_ops():
            library = torch.library.Library("torchvision", "DEF")
            for schema in _SCHEMAS:
                library.define(schema)
            _kept.append(library)
        return None  # the module itself is then found and run as usual


sys.meta_path.insert(0, _DeclareMissingTorchvisionOps())
