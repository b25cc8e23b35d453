"""Stream an answer token by token (transformers' ``TextIteratorStreamer``), stopping on ``end_sym``.

::

    reply = stream_reply(model, conversation.prompt(model.tokenizer, message, model.num_image_tokens),
                         image_embeds, temperature=0.7)
    for chunk in reply:          # text as it is generated (end_sym never shown)
        print(chunk, end="", flush=True)
    reply.text                   # the final answer, trimmed exactly as VisionLanguageModel.generate trims it

Beam search cannot stream in transformers; with ``num_beams > 1`` the whole answer arrives as one chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from transformers import StoppingCriteriaList, TextIteratorStreamer

from .stopping import EndSymStoppingCriteria, trim_generation

if TYPE_CHECKING:
    from .model import VisionLanguageModel


class StreamedReply:
    """Iterate for visible text chunks; `text` holds the final answer once iteration has ended."""

    def __init__(self, chunks: Iterator[str], finish: Any, end_sym: str):
        self._chunks = chunks
        self._finish = finish  # () -> final text, raising what generation raised
        self._end_sym = end_sym
        self.text: str | None = None

    def __iter__(self) -> Iterator[str]:
        raw, shown = "", ""
        for chunk in self._chunks:
            raw += chunk
            visible = _visible(raw, self._end_sym).lstrip()
            if len(visible) > len(shown):
                yield visible[len(shown) :]
                shown = visible
        self.text = self._finish()
        if self.text.startswith(shown) and len(self.text) > len(shown):  # held back, but no end_sym
            yield self.text[len(shown) :]

    def consume(self) -> str:
        """Run to the end without showing anything; return the final answer."""
        for _ in self:
            pass
        assert self.text is not None
        return self.text


def _visible(raw: str, end_sym: str) -> str:
    """Text before ``end_sym``, holding back a tail that may be the start of ``end_sym``."""
    if end_sym in raw:
        return raw.split(end_sym)[0]
    for k in range(min(len(end_sym) - 1, len(raw)), 0, -1):
        if raw.endswith(end_sym[:k]):
            return raw[:-k]
    return raw


@torch.no_grad()
def stream_reply(
    model: VisionLanguageModel,
    batch: Mapping[str, torch.Tensor],
    image_embeds: torch.Tensor,
    **decoding: Any,
) -> StreamedReply:
    """Generate the answer to a one-row prompt ``batch`` (e.g. `Conversation.prompt`) whose image slots
    take ``image_embeds`` [1, N, lm_hidden] (`VisionLanguageModel.encode_images`).

    ``decoding`` overrides the model's :class:`GenerationSettings` as in ``generate``. Generation runs
    in a background thread while the caller reads the chunks.
    """
    tokenizer = model._need_tokenizer()
    settings, extra = model.decoding(**decoding)
    model.eval()
    device = model.lm.get_input_embeddings().weight.device
    inputs_embeds = model.embed_prompt(batch, image_embeds.to(device))
    stop = EndSymStoppingCriteria(tokenizer, model.template.end_sym)
    kwargs = dict(
        inputs_embeds=inputs_embeds,
        attention_mask=batch["attention_mask"].to(device),
        stopping_criteria=StoppingCriteriaList([stop, *extra.pop("stopping_criteria", [])]),
        pad_token_id=tokenizer.pad_token_id,
        **settings.generate_kwargs(),
        **extra,
    )
    result: dict[str, Any] = {}

    def finish() -> str:
        if "error" in result:
            raise result["error"]
        return trim_generation(tokenizer, result["ids"][0], model.template.end_sym, stop.id_sequences)

    if settings.num_beams > 1:  # transformers streams greedy/sampled decoding only

        def whole() -> Iterator[str]:
            result["ids"] = model.lm.generate(**kwargs)
            yield finish()

        return StreamedReply(whole(), finish, model.template.end_sym)

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)

    def run() -> None:
        try:
            with torch.no_grad():
                result["ids"] = model.lm.generate(**kwargs, streamer=streamer)
        except BaseException as e:  # re-raised on the reading side by `finish`
            result["error"] = e
            streamer.end()

    thread = threading.Thread(target=run, name="mgpt-generate", daemon=True)
    thread.start()

    def chunks() -> Iterator[str]:
        yield from streamer
        thread.join()

    return StreamedReply(chunks(), finish, model.template.end_sym)
