"""The real-photo gallery loads offline, each photo with 5 hand-written captions."""

from __future__ import annotations

import socket

import pytest

from mgpt_eval import gallery_captions, load_gallery


def test_gallery_loads_offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("the gallery tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    items = load_gallery()
    assert 10 <= len(items) <= 20
    assert len({item.image_id for item in items}) == len(items)
    for item in items:
        assert item.image.mode == "RGB" and min(item.image.size) >= 100, item.image_id
        assert len(item.captions) == 5 and all(len(c.split()) >= 4 for c in item.captions), item.image_id
        assert len(set(item.captions)) == 5, item.image_id
        assert item.source.split(":")[0] in {"skimage", "matplotlib"}
    assert {i.source.split(":")[0] for i in items} == {"skimage", "matplotlib"}
    assert gallery_captions() == {item.image_id: item.captions for item in items}


def test_gallery_subset_and_unknown_id():
    (item,) = load_gallery(["skimage_coffee"])
    assert "cup" in " ".join(item.captions) and item.image.size == (600, 400)
    with pytest.raises(ValueError, match="unknown gallery image"):
        load_gallery(["nope"])
