"""Five varied, human-like captions per synthetic scene, each TRUE of it (colour, shape, count, place)."""

from __future__ import annotations

import numpy as np

from mgpt_data.scenes import Scene, SceneObject

POSITION_PHRASES: dict[str, tuple[str, ...]] = {
    "left": ("on the left", "on the left side", "on the left side of the picture", "at the left",
             "to the left of the image"),
    "right": ("on the right", "on the right side", "on the right side of the picture", "at the right",
              "to the right of the image"),
    "top": ("at the top", "at the top of the picture", "near the top of the image",
            "in the upper part of the picture"),
    "bottom": ("at the bottom", "at the bottom of the picture", "near the bottom of the image",
               "in the lower part of the picture"),
    "center": ("in the center", "in the middle of the picture", "in the center of the image",
               "in the middle"),
}
SHAPE_ADJECTIVES = {"circle": "round", "square": "square", "triangle": "triangular"}

ONE = (
    "{A} {pos}.",
    "There is one {c} {adj} shape {pos}.",
    "The image shows a single {c} {s} {pos} on a {bg} background.",
    "One {c} {s} can be seen {pos}.",
    "A simple picture with {a} {pos}.",
    "{A} sits {pos}, on a {bg} background.",
    "Only one shape, {a}, placed {pos}.",
    "A {bg} background with one {c} {s} {pos}.",
)
TWO = (
    "{A1} {p1} and {a2} {p2}.",
    "There are two shapes: {a1} {p1} and {a2} {p2}.",
    "Two shapes on a {bg} background, {a1} {p1} and {a2} {p2}.",
    "{A2} {p2} and {a1} {p1}.",
    "The picture contains two shapes, one {c1} {s1} {p1} and one {c2} {s2} {p2}.",
    "Two objects: {a1} placed {p1}, {a2} placed {p2}.",
    "{A1} {p1}, with {a2} {p2}.",
    "A {bg} background with two shapes, {a1} {p1} and {a2} {p2}.",
)


def with_article(words: str) -> str:
    """'orange circle' → 'an orange circle'."""
    return ("an " if words[0] in "aeiou" else "a ") + words


def _fields(obj: SceneObject, rng: np.random.Generator, suffix: str = "") -> dict[str, str]:
    phrases = POSITION_PHRASES[obj.position]
    noun = f"{obj.color} {obj.shape}"
    a = with_article(noun)
    return {f"c{suffix}": obj.color, f"s{suffix}": obj.shape, f"adj{suffix}": SHAPE_ADJECTIVES[obj.shape],
            f"a{suffix}": a, f"A{suffix}": a[0].upper() + a[1:],
            f"{'pos' if not suffix else 'p' + suffix}": phrases[int(rng.integers(len(phrases)))]}


def scene_captions(scene: Scene, rng: np.random.Generator, n: int = 5) -> list[str]:
    """``n`` captions from distinct templates, position phrases varied per caption."""
    templates = ONE if len(scene.objects) == 1 else TWO
    if len(scene.objects) not in (1, 2):
        raise ValueError(f"captions are written for 1 or 2 objects, got {len(scene.objects)}")
    picks = rng.choice(len(templates), size=min(n, len(templates)), replace=False)
    captions = []
    for t in picks:
        fields = {"bg": scene.background}
        if len(scene.objects) == 1:
            fields.update(_fields(scene.objects[0], rng))
        else:
            fields.update(_fields(scene.objects[0], rng, "1"))
            fields.update(_fields(scene.objects[1], rng, "2"))
        captions.append(templates[int(t)].format(**fields))
    return captions


def object_words(scene: Scene) -> list[str]:
    """Ground-truth object words of a scene (for CHAIR): the shape nouns, sorted."""
    return sorted({o.shape for o in scene.objects})
