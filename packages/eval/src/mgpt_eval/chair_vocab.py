"""Object vocabularies for CHAIR: surface words/phrases → object nodes, plus phrase rules.

``coco_vocabulary()`` is the table and hand rules of Rohrbach et al. 2018 (80 COCO categories,
synonyms, two-word objects such as "hot dog", "teddy bear", "motor bike", qualifier rules such as
"baby bird" → bird, "passenger train" → train, "toilet seat" → toilet, "train track" that must not
fire "train"). ``shapes_vocabulary()`` covers synthetic shape scenes: bare shapes ("circle") and
colour-shape objects ("red circle", which implies "circle" so a caption saying just "a circle" is
grounded by a red one, while "a blue circle" is a hallucination next to a red one).
Vocabularies merge; ``extend`` adds user objects (``EvalSettings.chair_extra_objects``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from mgpt_eval.singular import singularize


def normalise_phrase(phrase: str) -> str:
    """Lower-case, singularise each word, single spaces — the form captions are matched in."""
    return " ".join(singularize(w) for w in phrase.lower().replace("-", " ").split())


@dataclass(frozen=True)
class ObjectVocabulary:
    """What counts as an object mention and which node it names."""

    name: str
    surface: Mapping[str, str]  # normalised word/phrase -> node
    rewrites: Mapping[str, str] = field(default_factory=dict)  # phrase -> unit it is read as
    implies: Mapping[str, frozenset[str]] = field(default_factory=dict)  # node -> nodes it grounds
    drop_when: Mapping[str, str] = field(default_factory=dict)  # surface -> word whose presence drops it

    @property
    def nodes(self) -> set[str]:
        return set(self.surface.values())

    @property
    def max_phrase_len(self) -> int:
        return max(len(p.split()) for p in [*self.surface, *self.rewrites, "x"])

    def merge(self, other: ObjectVocabulary) -> ObjectVocabulary:
        """Union of two vocabularies; a word naming different nodes in each is an error."""
        clashes = {
            w for w in self.surface.keys() & other.surface.keys() if self.surface[w] != other.surface[w]
        }
        if clashes:
            raise ValueError(
                f"vocabularies {self.name!r} and {other.name!r} map {sorted(clashes)} differently"
            )
        implies = {k: frozenset(v) for k, v in self.implies.items()}
        for k, v in other.implies.items():
            implies[k] = implies.get(k, frozenset()) | v
        return ObjectVocabulary(
            name=f"{self.name}+{other.name}",
            surface={**self.surface, **other.surface},
            rewrites={**self.rewrites, **other.rewrites},
            implies=implies,
            drop_when={**self.drop_when, **other.drop_when},
        )

    def extend(self, objects: Mapping[str, Iterable[str]], name: str = "custom") -> ObjectVocabulary:
        """Add objects given as ``{node: [synonyms...]}`` (the node itself always counts)."""
        return self.merge(vocabulary_from_table(objects, name=name))


def vocabulary_from_table(objects: Mapping[str, Iterable[str]], *, name: str) -> ObjectVocabulary:
    """Build a vocabulary from ``{node: [synonym, ...]}``; words and phrases are normalised."""
    surface: dict[str, str] = {}
    for node, words in objects.items():
        node_key = normalise_phrase(node)
        if not node_key:
            raise ValueError(f"empty object name in vocabulary {name!r}")
        for word in [node, *words]:
            key = normalise_phrase(word)
            if key in surface and surface[key] != node_key:
                raise ValueError(f"{word!r} names both {surface[key]!r} and {node_key!r} in {name!r}")
            surface[key] = node_key
    return ObjectVocabulary(name=name, surface=surface)


@cache
def coco_vocabulary() -> ObjectVocabulary:
    """The 80 COCO objects with the reference synonyms and hand rules."""
    text = resources.files("mgpt_eval").joinpath("data/coco_synonyms.txt").read_text(encoding="utf-8")
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            words = [w.strip() for w in line.split(",") if w.strip()]
            table[words[0]] = words[1:]
    base = vocabulary_from_table(table, name="coco")
    rewrites = {p: p for p in ("home plate", "train track")}  # consumed so "train" does not fire
    for animal in (
        "bird",
        "cat",
        "dog",
        "horse",
        "sheep",
        "cow",
        "elephant",
        "bear",
        "zebra",
        "giraffe",
        "animal",
        "cub",
    ):
        rewrites[f"baby {animal}"] = animal  # not a person
        rewrites[f"adult {animal}"] = animal
    for vehicle in ("jet", "train"):
        rewrites[f"passenger {vehicle}"] = vehicle
    rewrites.update({"bow tie": "tie", "toilet seat": "toilet"})
    return ObjectVocabulary(
        name="coco", surface=dict(base.surface), rewrites=rewrites, drop_when={"seat": "toilet"}
    )


SHAPES: dict[str, list[str]] = {
    "circle": ["disc", "disk", "dot"],
    "square": [],
    "rectangle": ["oblong"],
    "triangle": [],
    "ellipse": ["oval"],
    "star": [],
    "diamond": ["rhombus"],
    "pentagon": [],
    "hexagon": [],
    "cross": ["plus sign"],
    "heart": [],
    "ring": ["annulus"],
}
COLOURS: dict[str, list[str]] = {
    "red": [],
    "green": [],
    "blue": [],
    "yellow": [],
    "orange": [],
    "purple": ["violet"],
    "pink": [],
    "white": [],
    "black": [],
    "grey": ["gray"],
    "brown": [],
    "cyan": [],
    "magenta": [],
}


@cache
def shapes_vocabulary() -> ObjectVocabulary:
    """Shapes ("circle") and colour-shape objects ("red circle" ⇒ grounds "circle" too)."""
    table: dict[str, list[str]] = {shape: list(syn) for shape, syn in SHAPES.items()}
    implies: dict[str, frozenset[str]] = {}
    for colour, colour_syn in COLOURS.items():
        for shape, shape_syn in SHAPES.items():
            node = f"{colour} {shape}"
            table[node] = [f"{c} {s}" for c in [colour, *colour_syn] for s in [shape, *shape_syn]]
            implies[node] = frozenset({shape})
    base = vocabulary_from_table(table, name="shapes")
    return ObjectVocabulary(name="shapes", surface=dict(base.surface), implies=implies)


VOCABULARIES = {"coco": coco_vocabulary, "shapes": shapes_vocabulary}


def build_vocabulary(
    names: Iterable[str] = ("coco",), extra_objects: Mapping[str, Iterable[str]] | None = None
) -> ObjectVocabulary:
    """Merge the named built-in vocabularies and extra ``{node: [synonyms]}`` objects."""
    names = list(names)
    unknown = [n for n in names if n not in VOCABULARIES]
    if unknown or not names:
        raise ValueError(f"unknown CHAIR vocabulary {unknown or names}; choose from {sorted(VOCABULARIES)}")
    vocab = VOCABULARIES[names[0]]()
    for name in names[1:]:
        vocab = vocab.merge(VOCABULARIES[name]())
    if extra_objects:
        vocab = vocab.extend(extra_objects)
    return vocab
