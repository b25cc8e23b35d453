"""Synthetic scenes: 1–2 coloured shapes at named positions on a plain or lightly speckled background.

Designed to be learnable in minutes by a frozen ImageNet CNN (pooled 4×4 grid) + a linear bridge +
a 135M LM: six well-separated colours, three shapes, five positions far enough apart that a 4×4 grid
tells them apart, shapes ~25 % of the image side. Two-shape scenes use opposite positions
(left/right or top/bottom) so they never overlap and their captions read naturally.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (214, 39, 40), "green": (44, 160, 44), "blue": (31, 90, 220),
    "yellow": (240, 210, 30), "purple": (140, 60, 180), "orange": (250, 128, 14),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (250, 250, 250), "light gray": (212, 212, 212), "beige": (235, 222, 195),
    "cream": (250, 243, 220),
}
SHAPES = ("circle", "square", "triangle")
POSITIONS = ("left", "right", "top", "bottom", "center")
PAIRS = (("left", "right"), ("top", "bottom"))
# shape centre as a fraction of the image side
CENTERS: dict[str, tuple[float, float]] = {
    "left": (0.25, 0.5), "right": (0.75, 0.5), "top": (0.5, 0.25), "bottom": (0.5, 0.75),
    "center": (0.5, 0.5),
}


@dataclass(frozen=True)
class SceneObject:
    shape: str
    color: str
    position: str
    bbox: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels

    def as_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "position": self.position, "bbox": list(self.bbox)}


@dataclass(frozen=True)
class Scene:
    background: str
    texture: str  # "plain" | "speckled"
    objects: tuple[SceneObject, ...]
    noise_seed: int


def sample_scene(rng: np.random.Generator, image_size: int = 224, two_shape_prob: float = 0.3) -> Scene:
    """Draw one scene's layout (no pixels yet) from ``rng``."""
    background = str(rng.choice(list(BACKGROUNDS)))
    texture = "speckled" if rng.random() < 0.5 else "plain"
    if rng.random() < two_shape_prob:
        positions = PAIRS[int(rng.integers(len(PAIRS)))]
        kinds: list[tuple[str, str]] = []
        while len(kinds) < 2:  # two different (colour, shape) objects
            kind = (str(rng.choice(list(COLORS))), str(rng.choice(SHAPES)))
            if kind not in kinds:
                kinds.append(kind)
    else:
        positions = (str(rng.choice(POSITIONS)),)
        kinds = [(str(rng.choice(list(COLORS))), str(rng.choice(SHAPES)))]
    objects = []
    for (color, shape), position in zip(kinds, positions, strict=True):
        fx, fy = CENTERS[position]
        jitter = image_size * 0.03
        cx = fx * image_size + rng.uniform(-jitter, jitter)
        cy = fy * image_size + rng.uniform(-jitter, jitter)
        half = image_size * rng.uniform(0.10, 0.14)
        bbox = (round(cx - half), round(cy - half), round(cx + half), round(cy + half))
        objects.append(SceneObject(shape, color, position, bbox))
    return Scene(background, texture, tuple(objects), int(rng.integers(2**31)))


def draw_scene(scene: Scene, image_size: int = 224) -> Image.Image:
    """Render a scene as an RGB image."""
    base = np.empty((image_size, image_size, 3), dtype=np.float32)
    base[:] = BACKGROUNDS[scene.background]
    if scene.texture == "speckled":
        noise = np.random.default_rng(scene.noise_seed).normal(0.0, 7.0, size=(image_size, image_size, 1))
        base += noise.astype(np.float32)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), mode="RGB")
    draw = ImageDraw.Draw(image)
    for obj in scene.objects:
        x0, y0, x1, y1 = obj.bbox
        fill = COLORS[obj.color]
        if obj.shape == "circle":
            draw.ellipse((x0, y0, x1, y1), fill=fill)
        elif obj.shape == "square":
            draw.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return image
