"""CHAIR on hand-made captions: synonyms, two-word objects, plurals, rules, counts, ground truth."""

from __future__ import annotations

import json

import pytest

from mgpt_eval import (
    build_vocabulary,
    caption_objects,
    chair,
    chair_with_ground_truth,
    coco_vocabulary,
    objects_from_captions,
    objects_from_coco_instances,
    shapes_vocabulary,
    singularize,
)


def nodes(caption: str, vocab=None) -> list[str]:
    return [node for _, node in caption_objects(caption, vocab)]


def test_vocabulary_has_the_80_coco_objects():
    assert len(coco_vocabulary().nodes) == 80
    assert {"person", "hot dog", "teddy bear", "dining table", "cell phone"} <= coco_vocabulary().nodes


@pytest.mark.parametrize(
    ("word", "singular"),
    [
        ("men", "man"),
        ("women", "woman"),
        ("children", "child"),
        ("mice", "mouse"),
        ("knives", "knife"),
        ("buses", "bus"),
        ("glasses", "glass"),
        ("benches", "bench"),
        ("boxes", "box"),
        ("puppies", "puppy"),
        ("ties", "tie"),
        ("horses", "horse"),
        ("giraffes", "giraffe"),
        ("policemen", "policeman"),
        ("tomatoes", "tomato"),
        ("shoes", "shoe"),
        ("sheep", "sheep"),
        ("people", "people"),
        ("bus", "bus"),
        ("grass", "grass"),
        ("scissors", "scissors"),
        ("tennis", "tennis"),
        ("ellipses", "ellipse"),
        ("is", "is"),
    ],
)
def test_singularize(word, singular):
    assert singularize(word) == singular


def test_synonyms_map_to_their_coco_object():
    assert nodes("A man, two women and a little girl with their puppy.") == [
        "person",
        "person",
        "person",
        "dog",
    ]
    assert nodes("A kitten on the sofa next to a television") == ["cat", "couch", "tv"]


def test_two_word_objects_and_plurals():
    assert nodes("Two hot dogs and three teddy bears") == ["hot dog", "teddy bear"]
    assert nodes("people riding motor bikes past fire hydrants") == ["person", "motorcycle", "fire hydrant"]
    assert nodes("a hot-dog stand") == ["hot dog"]
    assert nodes("wine glasses and cell phones on a dining table") == [
        "wine glass",
        "cell phone",
        "dining table",
    ]


def test_reference_rules():
    assert nodes("a baby elephant") == ["elephant"]  # not a person
    assert nodes("a passenger train on the train tracks") == ["train"]  # "train track" is no train
    assert nodes("the toilet seat is up") == ["toilet"]
    assert nodes("a toilet with its seat up") == ["toilet"]  # seat is not a chair next to a toilet
    assert nodes("a man in a bow tie") == ["person", "tie"]
    assert nodes("a chair by the window") == ["chair"]


def test_chair_counts_hallucinated_mentions_and_captions():
    candidates = {
        "a": "A man walks his dog past a bench.",  # all grounded
        "b": "A cat sleeps on a couch next to a remote and a laptop.",  # laptop hallucinated
        "c": "Two giraffes and a zebra near a car.",  # zebra and car hallucinated
        "d": "A blurry photo of something.",  # no objects
    }
    truth = {"a": {"person", "dog", "bench"}, "b": {"cat", "couch", "remote"}, "c": {"giraffe"}, "d": {"cup"}}
    result = chair(candidates, truth)
    assert result["n_mentions"] == 3 + 4 + 3
    assert result["n_hallucinated_mentions"] == 1 + 2
    assert result["CHAIRi"] == pytest.approx(3 / 10)
    assert result["CHAIRs"] == pytest.approx(2 / 4)
    assert result["per_image"]["c"]["hallucinated"] == ["zebra", "car"]
    assert result["per_image"]["d"] == {"words": [], "mentioned": [], "hallucinated": []}


def test_repeated_hallucination_counts_each_mention():
    result = chair({"a": "a dog and another dog"}, {"a": set()})
    assert (result["n_mentions"], result["n_hallucinated_mentions"], result["CHAIRs"]) == (2, 2, 1.0)


def test_no_mentions_gives_nan_chairi():
    result = chair({"a": "nothing here"}, {"a": {"dog"}})
    assert result["CHAIRi"] != result["CHAIRi"] and result["CHAIRs"] == 0.0


def test_missing_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="no ground-truth"):
        chair({"a": "a dog"}, {"b": {"dog"}})


def test_ground_truth_from_reference_captions():
    references = {"x": ["A woman rides a horse.", "A lady on a pony near a fence."]}
    assert objects_from_captions(references) == {"x": {"person", "horse"}}
    result = chair_with_ground_truth({"x": "A girl riding a horse next to a dog."}, references=references)
    assert result["ground_truth_source"] == "reference_captions"
    assert result["per_image"]["x"]["hallucinated"] == ["dog"]


def test_ground_truth_from_coco_instances(tmp_path):
    instances = {
        "images": [{"id": 42, "file_name": "COCO_val2014_000000000042.jpg"}, {"id": 7, "file_name": "b.jpg"}],
        "categories": [
            {"id": 1, "name": "person"},
            {"id": 18, "name": "dog"},
            {"id": 67, "name": "dining table"},
        ],
        "annotations": [
            {"image_id": 42, "category_id": 1},
            {"image_id": 42, "category_id": 18},
            {"image_id": 7, "category_id": 67},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(instances))
    truth = objects_from_coco_instances(path)
    assert truth["42"] == truth["COCO_val2014_000000000042"] == {"person", "dog"}
    assert truth["7"] == {"dining table"}
    result = chair_with_ground_truth(
        {"42": "a man and his dog at a table"}, instances_json=path, references={"42": ["a table"]}
    )
    assert result["ground_truth_source"] == "coco_instances"
    assert result["per_image"]["42"]["hallucinated"] == ["dining table"]


def test_shapes_vocabulary_colour_objects():
    vocab = build_vocabulary(["coco", "shapes"])
    assert nodes("a red circle on the left and two blue squares", vocab) == ["red circle", "blue square"]
    assert nodes("a gray oval", vocab) == ["grey ellipse"]
    assert nodes("an orange triangle and an orange", vocab) == ["orange triangle", "orange"]
    truth = objects_from_captions({"s": ["A red circle on the left."]}, vocab)
    assert truth == {"s": {"red circle"}}
    result = chair(
        {"s": "a circle", "t": "a blue circle"}, {"s": truth["s"], "t": truth["s"]}, vocabulary=vocab
    )
    assert result["per_image"]["s"]["hallucinated"] == []  # "red circle" grounds a bare "circle"
    assert result["per_image"]["t"]["hallucinated"] == ["blue circle"]
    assert shapes_vocabulary().implies["red circle"] == frozenset({"circle"})


def test_extend_vocabulary_and_clash():
    vocab = coco_vocabulary().extend({"lighthouse": ["beacon tower"]})
    assert nodes("a tall beacon tower and a boat", vocab) == ["lighthouse", "boat"]
    with pytest.raises(ValueError, match="differently"):
        coco_vocabulary().extend({"puppy dog": ["puppy"]})
    with pytest.raises(ValueError, match="unknown CHAIR vocabulary"):
        build_vocabulary(["animals"])
