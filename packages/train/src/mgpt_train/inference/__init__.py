"""Inference people can use: terminal chat, the gradio demo, captioning at scale, a Ray Serve endpoint.

Each needs several packages (the model from mgpt_bridge/mgpt_vision, image decoding and rejects from
mgpt_data, Ray), so it lives here; ``mgpt chat|demo|caption|serve`` only parse flags and call these.
Names load on first use (``lazy_loader``; gradio and Ray Serve are optional extras:
``mgpt-train[demo,serve]``); the public names are listed once, in ``__init__.pyi``.
"""

import lazy_loader

__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
