"""A multi-turn conversation about one image, rendered with the run's own prompt template.

The image is spliced ONCE, into the first user turn (behind the template's image tag, e.g.
``<Img><ImageHere></Img>``); later turns keep the whole history. With the MiniGPT-4 template the
prompt of the third turn is one line, the concatenation of::

    "###Human: <Img><ImageHere></Img> q1 ###Assistant: a1"
    "###Human: q2 ###Assistant: a2"
    "###Human: q3 ###Assistant: "

(``end_sym`` ``###`` after each answer doubles as the turn separator, as in MiniGPT-4's demo); with
``style = "chat"`` the LM's own chat template renders the same turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .template import PromptTemplate, build_segments_prompt


@dataclass(frozen=True)
class Exchange:
    """One finished turn: what the user said (as rendered, image tag included) and the answer."""

    user: str
    answer: str


@dataclass
class Conversation:
    """The turns so far; `prompt` renders them plus the next message for generation."""

    template: PromptTemplate
    turns: list[Exchange] = field(default_factory=list)

    @property
    def image_tag(self) -> str:
        """The image part of the template's first instruction (``<Img><ImageHere></Img>``, or the bare
        placeholder when the instruction has no ``<Img>`` wrapper)."""
        placeholder = self.template.settings.image_placeholder
        wrapped = f"<Img>{placeholder}</Img>"
        return wrapped if wrapped in self.template.instructions[0] else placeholder

    def user_text(self, message: str) -> str:
        """What the next user turn holds: the first one gets the image tag (an empty first message
        becomes the template's first instruction, i.e. "describe the image"); later ones are as typed."""
        message = message.strip()
        if self.turns:
            if self.template.settings.image_placeholder in message:
                raise ValueError("the image is already in the conversation; /reset to start a new one")
            return message
        if not message:
            return self.template.instructions[0]
        if self.template.settings.image_placeholder in message:
            return message
        return f"{self.image_tag} {message}"

    def render(self, message: str) -> str:
        """The full prompt text for answering ``message`` (image placeholder included once)."""
        return self.template.render_turns(self._history(), self.user_text(message))

    def segments(self, message: str) -> tuple[str, str]:
        """``(text before the image, text after it)`` of `render`."""
        return self.template.segments(self.user_text(message), self._history())

    def prompt(self, tokenizer, message: str, num_image_tokens: int) -> dict[str, torch.Tensor]:
        """One-row generation batch (see `build_segments_prompt`) for answering ``message``."""
        return build_segments_prompt(tokenizer, [self.segments(message)], num_image_tokens)

    def add(self, message: str, answer: str) -> None:
        """Record a finished turn (call after generating the answer to ``message``)."""
        self.turns.append(Exchange(self.user_text(message), answer))

    def reset(self) -> None:
        """Forget every turn (the next message carries the image again)."""
        self.turns.clear()

    def _history(self) -> list[tuple[str, str]]:
        return [(t.user, t.answer) for t in self.turns]
