"""mgpt_train: RunSettings, the MiniGPT-4 schedule, Ray Train `fit`, Ray Data `predict`, `evaluate_run`.

Names load on first use (``lazy_loader``), so light imports stay light; the public API is listed
once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
