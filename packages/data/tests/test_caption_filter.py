"""The curation post-filter on a corpus of bad generations (the failure kinds MiniGPT-4's stage-1 model
showed: repetition, fragments, non-English, refusals) and of good ones that must survive it."""

from __future__ import annotations

import pytest

from mgpt_data.caption_filter import REASONS, FilterRules, filter_caption

GOOD = [
    "A red circle is on the left side of the picture. A small blue square sits near the top right corner, "
    "and the background is a plain light grey.",
    "The image shows a green triangle in the middle of a white background. There is also a yellow star "
    "below it, close to the bottom edge of the picture.",
    "Two people are walking a dog along a sandy beach at sunset. The sky is orange and pink, and gentle "
    "waves roll onto the shore behind them.",
]

LONG = (  # 231 words of plain, varied prose: over the default limit of 200
    "The photograph captures a quiet harbour town early in the morning, just after sunrise. In the "
    "foreground, a weathered wooden pier stretches out over calm green water, its planks darkened by years "
    "of salt and rain. Several small fishing boats are tied to the posts; one of them is painted bright "
    "blue with a red stripe along its side, while another, older boat has peeling white paint and a coil "
    "of rope resting on its deck. A grey heron stands motionless at the end of the pier, watching the "
    "surface for fish. Beyond the boats, a row of narrow houses lines the waterfront. Their facades are "
    "painted in soft pastel colours such as yellow, pink, pale orange and mint, and most of them have "
    "dark slate roofs with tall chimneys. A few windows are open, and laundry hangs from a line strung "
    "between two balconies. On the left, a small cafe has already put out its chairs and round metal "
    "tables, and a man in a brown jacket is reading a newspaper while holding a cup. Farther back, green "
    "hills rise behind the town, dotted with sheep and crossed by low stone walls. The sky is mostly "
    "clear, with a few thin clouds catching golden light near the horizon. Seagulls circle above the "
    "masts, and the whole scene feels peaceful, slow and unhurried, as if the day has not quite decided "
    "to begin yet for anyone living there."
)

BAD = {  # text → the reason it must be rejected for
    "": "empty",
    "   \n\t ": "empty",
    "... --- !!! 123": "empty",
    "I'm sorry, but I cannot see the image you are referring to. Could you upload it again?": "refusal",
    "As an AI language model, I am unable to view pictures, but a beach has sand and water.": "refusal",
    "I apologize for that. The image shows a red circle on the left side of a grey picture.": "refusal",
    "Sorry, I made a mistake in my previous answer: the circle on the left is blue, not red.": "refusal",
    "这张图片显示了一个红色的圆圈在图片的左侧，背景是灰色的，右上角有一个蓝色的小方块。": "non_english",
    "Это изображение показывает красный круг в левой части картинки и синий квадрат справа.": "non_english",
    "Das Bild zeigt einen roten Kreis links und ein blaues Quadrat rechts oben, der Hintergrund ist grau.":
        "non_english",
    "#### @@@ %%% red ~~~ ^^^ *** circle &&& ||| ;;; left ::: === +++ image ((( ))) [[[ ]]]": "non_english",
    "A red circle on the left. A red circle on the left. A red circle on the left.": "repetition",
    "The image shows a red red red circle on the left side of the picture and a blue square.": "repetition",
    "a circle on the left a circle on the left a circle on the left a circle on the left": "repetition",
    "A red circle on the left side of the": "fragment",
    "Red circle.": "fragment",
    "A picture. It is grey. Circle.": "fragment",
    LONG: "too_long",
}


@pytest.mark.parametrize("text", GOOD)
def test_good_descriptions_are_kept_unchanged(text: str) -> None:
    verdict = filter_caption(text)
    assert verdict.kept, verdict
    assert verdict.text == text and verdict.fixes == ()


@pytest.mark.parametrize("text,reason", list(BAD.items()))
def test_each_bad_generation_is_rejected_with_its_reason(text: str, reason: str) -> None:
    verdict = filter_caption(text)
    assert (verdict.kept, verdict.reason) == (False, reason), verdict
    assert verdict.text is None and verdict.detail and "\n" not in verdict.detail


def test_the_corpus_covers_every_reason() -> None:
    assert set(BAD.values()) == set(REASONS)


def test_an_unfinished_last_sentence_is_cut_and_said_so() -> None:
    text = GOOD[0] + " In the lower part of the image there is a"
    verdict = filter_caption(text)
    assert verdict.kept and verdict.text == GOOD[0]
    assert verdict.fixes == ("cut an unfinished last sentence",)


def test_white_space_is_normalised() -> None:
    verdict = filter_caption("  A red circle is on the left\n side of the picture,  and a blue   square is "
                             "on the right. ")
    assert verdict.text == ("A red circle is on the left side of the picture, and a blue square is on the "
                            "right.")


def test_rules_are_thresholds_that_can_be_changed() -> None:
    short = "A red circle on the left."
    assert filter_caption(short).reason == "fragment"
    assert filter_caption(short, FilterRules(min_words=3)).kept
    assert filter_caption(GOOD[0], FilterRules(max_words=10)).reason == "too_long"
