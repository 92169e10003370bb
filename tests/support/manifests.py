"""The Modal manifests (modal/*.py), imported offline: defining an App, Images, Volumes and
Secrets is lazy, and only deploying would contact Modal. Needs the Modal client (a dev
dependency); callers skip without it."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

from tests.support import ROOT

MODAL_DIR = ROOT / "modal"


@contextlib.contextmanager
def imported_manifest(stem: str) -> Iterator[ModuleType]:
    """modal/<stem>.py as a module of its own (each import a fresh one, under a private name)."""
    module_name = f"_modal_manifest_{stem}"
    spec = importlib.util.spec_from_file_location(module_name, MODAL_DIR / f"{stem}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(module_name, None)
