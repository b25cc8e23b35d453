"""mgpt_vision: frozen image encoders, their preprocessing and a feature cache.

Names load on first use (``lazy_loader``), so ``import mgpt_vision`` is cheap; the public API is
listed once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
