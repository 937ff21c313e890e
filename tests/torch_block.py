"""Make ``import torch`` fail, as on a machine where torch is not installed.

An import hook rather than ``sys.modules["torch"] = None``: libraries read
``sys.modules`` to detect torch arrays (scipy does, on import) and fail on a ``None`` there.
"""

from __future__ import annotations

import sys
from importlib.abc import MetaPathFinder


class _NoTorch(MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r} (torch is blocked)", name=name)
        return None


def block_torch() -> None:
    """From now on ``import torch`` raises ModuleNotFoundError in this interpreter."""
    if "torch" in sys.modules:
        raise RuntimeError("torch is already imported: it cannot be blocked any more")
    if not any(isinstance(finder, _NoTorch) for finder in sys.meta_path):
        sys.meta_path.insert(0, _NoTorch())
