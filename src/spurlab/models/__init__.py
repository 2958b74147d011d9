"""Models (docs/methods.md#models): local architectures registered in timm, the `Classifier` wrapper, save/load,
checkpoint import and L2 PGD.

Importing this package registers `cbr_tiny`, `resnet10_small` and `resnet18_small` with timm, so
``timm.create_model("cbr_tiny", num_classes=10)`` works after ``import spurlab.models``.
"""

from . import cbr, resnet_small  # noqa: F401  (register the local architectures with timm)
from .checkpoints import import_checkpoint
from .factory import Classifier, build_classifier, create_model, load_model, predict, save_model
from .robust import l2_pgd, scale_eps

LOCAL_ARCHS = ("cbr_tiny", "resnet10_small", "resnet18_small")

__all__ = [
    "LOCAL_ARCHS",
    "Classifier",
    "build_classifier",
    "create_model",
    "import_checkpoint",
    "l2_pgd",
    "load_model",
    "predict",
    "save_model",
    "scale_eps",
]
