"""The browser demo (gradio): upload an image, chat with streamed answers, tune decoding, pick a checkpoint.

MiniGPT-4's ``demo.py`` in our terms: sliders for beams (1–10), temperature, top-p and max new
tokens start at `GenerationSettings.minigpt4_demo`; "Restart" forgets the image and the chat; the
checkpoint picker lists the run's epochs and the untrained bridge (switching swaps the trainable
weights in place and restarts the chat). One model is shared by every browser tab; each tab has its
own conversation. Needs the ``demo`` extra (``mgpt-train[demo]``: gradio).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mgpt_train.inference.loading import UNTRAINED, InferenceModel, ModelSource, checkpoint_name

if TYPE_CHECKING:
    import gradio as gr

    from mgpt_bridge import GenerationSettings

logger = logging.getLogger(__name__)

#: Element ids the browser test (and anyone scripting the page) can rely on.
ELEMENT_IDS = ("image", "chatbot", "message", "send", "restart", "checkpoint", "num-beams", "temperature",
               "top-p", "max-new-tokens")


def _gradio() -> Any:
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # nothing leaves the machine
    try:
        import gradio
    except ImportError as e:  # pragma: no cover - the dev group installs it
        raise ValueError("the demo needs gradio: install mgpt-train[demo] (uv sync does)") from e
    return gradio


def checkpoint_choices(source: ModelSource) -> dict[str, Path | None]:
    """Picker entries: the run's epoch checkpoints (and a named one outside the run), then untrained."""
    choices: dict[str, Path | None] = {p.name: p for p in source.checkpoints()}
    if source.checkpoint is not None and source.checkpoint.name not in choices:
        choices[source.checkpoint.name] = source.checkpoint
    choices[UNTRAINED] = None
    return choices


def build_demo(model: InferenceModel, *, decoding: GenerationSettings | None = None,
               max_tokens_limit: int = 1024) -> gr.Blocks:
    """The gradio app around ``model`` (not launched)."""
    from mgpt_bridge import GenerationSettings
    from mgpt_train.inference.chat import ChatSession

    gr = _gradio()
    start = decoding or GenerationSettings.minigpt4_demo()
    choices = checkpoint_choices(model.source)

    def new_session(image: Any) -> ChatSession | None:
        if image is None:
            return None
        session = ChatSession(model, decoding=start)
        session.set_image(image.convert("RGB"))
        return session

    def on_image(image: Any) -> tuple[ChatSession | None, list]:
        return new_session(image), []

    def send(message: str, history: list, session: ChatSession | None, image: Any, beams: int,
             temperature: float, top_p: float, max_new_tokens: int) -> Iterator[tuple[list, str, Any]]:
        if session is None:  # the image arrived before its change event was handled
            session = new_session(image)
        if session is None:
            raise gr.Error("Upload an image first.")
        if not message.strip():
            raise gr.Error("Type a message.")
        history = [*history, {"role": "user", "content": message},
                   {"role": "assistant", "content": ""}]
        yield history, "", session
        answer = ""
        try:
            for chunk in session.ask(message, num_beams=int(beams), temperature=float(temperature),
                                     top_p=float(top_p), max_new_tokens=int(max_new_tokens)):
                answer += chunk
                history[-1] = {"role": "assistant", "content": answer}
                yield history, "", session
        except ValueError as e:
            raise gr.Error(str(e)) from e
        history[-1] = {"role": "assistant", "content": session.conversation.turns[-1].answer}
        yield history, "", session

    def restart() -> tuple[None, None, list, str]:
        return None, None, [], ""

    def pick(name: str, image: Any) -> tuple[ChatSession | None, list]:
        try:
            model.use(choices[name])
        except (ValueError, FileNotFoundError) as e:
            raise gr.Error(str(e)) from e
        return new_session(image), []

    with gr.Blocks(title="mgpt demo") as demo:
        gr.Markdown(f"## mgpt: chat about an image\nModel: `{model.model.encoder_name}` → "
                    f"`{model.model.lm_name}`, device `{model.device}`. Upload an image, then ask.")
        session = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                image = gr.Image(type="pil", label="Image", sources=["upload"], elem_id="image")
                checkpoint = gr.Dropdown(list(choices), value=checkpoint_name(model.checkpoint),
                                         label="Checkpoint", elem_id="checkpoint")
                beams = gr.Slider(1, 10, value=start.num_beams, step=1, label="Beams", elem_id="num-beams")
                temperature = gr.Slider(0.1, 2.0, value=start.temperature, step=0.1, label="Temperature",
                                        elem_id="temperature")
                top_p = gr.Slider(0.1, 1.0, value=start.top_p, step=0.05, label="Top-p", elem_id="top-p")
                max_new = gr.Slider(1, max_tokens_limit, value=min(start.max_new_tokens, max_tokens_limit),
                                    step=1, label="Max new tokens", elem_id="max-new-tokens")
                restart_button = gr.Button("Restart", elem_id="restart")
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label="Chat", elem_id="chatbot", height=460)
                message = gr.Textbox(placeholder="Ask about the image and press Enter", show_label=False,
                                     elem_id="message")
                send_button = gr.Button("Send", variant="primary", elem_id="send")
        image.change(on_image, [image], [session, chatbot])
        inputs = [message, chatbot, session, image, beams, temperature, top_p, max_new]
        message.submit(send, inputs, [chatbot, message, session])
        send_button.click(send, inputs, [chatbot, message, session])
        restart_button.click(restart, [], [session, image, chatbot, message])
        checkpoint.change(pick, [checkpoint, image], [session, chatbot])
    return demo


@dataclass
class RunningDemo:
    """A launched demo: its URL; `wait` blocks until Ctrl-C, `close` stops it."""

    app: Any
    url: str

    def wait(self) -> None:
        self.app.block_thread()

    def serve_forever(self) -> None:
        """`wait` until Ctrl-C, then `close`."""
        try:
            self.wait()
        except KeyboardInterrupt:
            pass
        finally:
            self.close()

    def close(self) -> None:
        self.app.close()


def launch_demo(source: ModelSource, *, host: str = "127.0.0.1", port: int | None = None,
                device: str = "auto", decoding: GenerationSettings | None = None) -> RunningDemo:
    """Build the model and the app and serve it on ``host:port`` (127.0.0.1 unless told otherwise;
    ``port`` None = gradio's first free port from 7860) without blocking."""
    model = InferenceModel(source, device=device)
    limit = int(getattr(model.model.lm.config, "max_position_embeddings", 1024) or 1024)
    demo = build_demo(model, decoding=decoding, max_tokens_limit=min(1024, limit))
    demo.queue()
    _, url, _ = demo.launch(server_name=host, server_port=port, prevent_thread_lock=True, share=False,
                            inbrowser=False, quiet=True)
    logger.info("demo running at %s", url)
    return RunningDemo(demo, url)
