"""Inference people can use: terminal chat, the gradio demo, captioning at scale, a Ray Serve endpoint.

Each needs several packages (the model from mgpt_bridge/mgpt_vision, image decoding and rejects from
mgpt_data, Ray), so it lives here; ``mgpt chat|demo|caption|serve`` only parse flags and call these.
Names load on first use (gradio and Ray Serve are optional extras: ``mgpt-train[demo,serve]``).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "InferenceModel": "loading",
    "ModelSource": "loading",
    "default_checkpoint": "loading",
    "resolve_device": "loading",
    "resolve_source": "loading",
    "with_decoding": "loading",
    "caption_files": "caption",
    "collect_images": "caption",
    "ChatSession": "chat",
    "run_terminal_chat": "chat",
    "build_demo": "demo",
    "launch_demo": "demo",
    "ServeSettings": "serve",
    "start_server": "serve",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
