"""Multi-turn chat about one image: `ChatSession` (used by the terminal chat and the web demo) and
`run_terminal_chat`, the read-answer loop of ``mgpt chat`` (works on a pipe as on a terminal).

Decoding defaults to MiniGPT-4's demo settings (`GenerationSettings.minigpt4_demo`: sampling,
top-p .9, repetition penalty 1.05, up to 300 new tokens); ``seed`` re-seeds the sampler before
every answer, so a scripted chat is reproducible.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from PIL import Image

    from mgpt_bridge import GenerationSettings
    from mgpt_train.inference.loading import InferenceModel

logger = logging.getLogger(__name__)

COMMANDS_HELP = "/image PATH: talk about another image · /reset: forget the conversation · /quit: leave"


class ChatSession:
    """One conversation about one image with a (possibly shared) `InferenceModel`."""

    def __init__(self, model: InferenceModel, *, decoding: GenerationSettings | None = None,
                 seed: int | None = None):
        from mgpt_bridge import Conversation, GenerationSettings

        self.model = model
        self.decoding = decoding or GenerationSettings.minigpt4_demo()
        self.seed = seed
        self.conversation = Conversation(model.model.template)
        self.image: Image.Image | None = None
        self._embeds: tuple[int, Any] | None = None  # (model.version, image embeddings)

    def set_image(self, image: Image.Image) -> None:
        """Talk about ``image`` (RGB PIL) from now on; the conversation starts over."""
        self.image = image
        self._embeds = None
        self.reset()

    def load_image(self, path: Path | str) -> None:
        """`set_image` from a file; raises ``ValueError`` naming why it cannot be read."""
        from mgpt_data.images import ImageDecodeError, decode_image

        try:
            self.set_image(decode_image(str(path)))
        except ImageDecodeError as e:
            raise ValueError(f"cannot use image {path}: {e}") from e

    def reset(self) -> None:
        """Forget every turn (the image stays)."""
        self.conversation.reset()

    def _image_embeds(self) -> Any:
        if self._embeds is None or self._embeds[0] != self.model.version:
            with self.model.autocast():
                embeds = self.model.model.encode_images(self.model.pixels([self.image]))
            self._embeds = (self.model.version, embeds)
        return self._embeds[1]

    def ask(self, message: str, **decoding: Any) -> Iterator[str]:
        """Yield the answer to ``message`` as it is generated; the turn is recorded when it ends.

        ``decoding`` overrides this session's decoding settings for this turn.
        """
        import torch

        from mgpt_bridge import stream_reply
        from mgpt_train.inference.loading import with_decoding

        if self.image is None:
            raise ValueError("no image yet: give one first (/image PATH, or upload it)")
        settings = with_decoding(self.decoding, **decoding)
        vlm = self.model.model
        with self.model.lock:
            batch = self.conversation.prompt(vlm.tokenizer, message, vlm.num_image_tokens)
            limit = int(getattr(vlm.lm.config, "max_position_embeddings", 0) or 0)
            needed = batch["input_ids"].shape[1] + settings.max_new_tokens
            if limit and needed > limit:
                raise ValueError(f"the conversation is {batch['input_ids'].shape[1]} tokens; with "
                                 f"{settings.max_new_tokens} new ones it exceeds the LM's {limit}: /reset")
            if self.seed is not None:
                torch.manual_seed(self.seed)
            with self.model.autocast():
                reply = stream_reply(vlm, batch, self._image_embeds(), **settings.model_dump())
                yield from reply
        assert reply.text is not None
        self.conversation.add(message, reply.text)


def run_terminal_chat(session: ChatSession, stdin: TextIO, stdout: TextIO, stderr: TextIO, *,
                      interactive: bool, as_json: bool = False) -> int:
    """Read lines from ``stdin`` until EOF or ``/quit``; print each answer to ``stdout`` as it streams.

    ``interactive`` shows ``you>`` / ``assistant>`` prompts; ``as_json`` prints one JSON line per
    event instead (``{"turn", "user", "answer"}`` per answer, ``{"error"}``, ...), for scripts.
    A bad line (an unreadable /image, no image yet, an unknown command) is reported and the chat goes
    on. Returns the number of answered turns.
    """
    answered = 0
    while True:
        if interactive:
            stdout.write("you> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        try:
            if text == "/reset":
                session.reset()
                _note(stdout, stderr, as_json, {"event": "reset"}, "(conversation reset)")
            elif text.startswith("/image"):
                path = text[len("/image"):].strip()
                if not path:
                    raise ValueError("/image needs a path")
                session.load_image(path)
                _note(stdout, stderr, as_json, {"event": "image", "path": path}, f"(now about {path})")
            elif text.startswith("/"):
                raise ValueError(f"unknown command {text.split()[0]}; {COMMANDS_HELP}")
            elif as_json:
                answer = "".join(session.ask(text))
                answered += 1
                stdout.write(json.dumps({"turn": answered, "user": text, "answer": answer}) + "\n")
            else:
                stream = session.ask(text)
                first = next(stream, "")  # errors (no image, too long) surface before any output
                stdout.write(("assistant> " if interactive else "") + first)
                for chunk in stream:
                    stdout.write(chunk)
                    stdout.flush()
                stdout.write("\n")
                answered += 1
            stdout.flush()
        except ValueError as e:
            _note(stdout, stderr, as_json, {"error": str(e)}, f"error: {e}")
    return answered


def _note(stdout: TextIO, stderr: TextIO, as_json: bool, record: dict[str, Any], text: str) -> None:
    """Events and errors: a JSON line on stdout in JSON mode, else a line on stderr."""
    stream = stdout if as_json else stderr
    stream.write((json.dumps(record) if as_json else text) + "\n")
    stream.flush()


def run_chat(source: Any, image: Path | str, *, decoding: dict[str, Any] | None = None, device: str = "auto",
             seed: int | None = None, as_json: bool = False, stdin: TextIO, stdout: TextIO,
             stderr: TextIO) -> int:
    """What ``mgpt chat`` runs: build ``source``'s model (a `ModelSource`), decode with MiniGPT-4's demo
    settings plus ``decoding`` overrides, load ``image``, then `run_terminal_chat` (prompts only when
    ``stdin`` is a terminal). Returns the number of answered turns."""
    from mgpt_bridge import GenerationSettings
    from mgpt_train.inference.loading import InferenceModel, with_decoding

    model = InferenceModel(source, device=device)
    chosen = with_decoding(GenerationSettings.minigpt4_demo(), **(decoding or {}))
    session = ChatSession(model, decoding=chosen, seed=seed)
    session.load_image(image)
    interactive = stdin.isatty()
    if interactive:
        stderr.write(f"chatting about {image} with {model.name} on {model.device}. {COMMANDS_HELP}\n")
    return run_terminal_chat(session, stdin, stdout, stderr, interactive=interactive, as_json=as_json)
