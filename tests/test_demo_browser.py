"""The web demo in a real browser: `mgpt demo` on a tiny run, driven by headless Chromium (Debian's
`chromium` + `chromium-driver`, which `.ci/run` installs) through selenium.

It first sends a message with no image (an error toast, not a crash), then uploads a real photo
(scikit-image's astronaut), sends a message, waits for the streamed answer
to finish (at most 40 new tokens, set with a slider), asserts it is shown, saves a screenshot as
``<tmp_path>/demo.png``, checks that Restart clears the chat and the image, and switches the
checkpoint picker (the run's epochs and the untrained bridge) to the untrained bridge.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from browser import start_chromium
from processes import stop

ROOT = Path(__file__).resolve().parents[1]
UV = shutil.which("uv") or "uv"


_RECORD_BOT_TEXTS = """
window.__botTexts = [];
const chat = document.querySelector('#chatbot');
new MutationObserver(() => {
  const bubbles = chat.querySelectorAll('.message.bot');
  const text = bubbles.length ? bubbles[bubbles.length - 1].innerText.trim() : '';
  const all = window.__botTexts;
  if (all.length === 0 || all[all.length - 1] !== text) all.push(text);
}).observe(chat, {childList: true, subtree: true, characterData: true});
"""

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toasts(browser) -> list:
    from selenium.webdriver.common.by import By

    return browser.find_elements(By.CSS_SELECTOR, ".toast-body.error")


def _start_demo(run_dir: Path, port: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "MGPT_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"}
    log = log_path.open("w")
    proc = subprocess.Popen([UV, "run", "apps/cli", "demo", "--run", str(run_dir), "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = log_path.read_text()
        if proc.poll() is not None:
            pytest.fail(f"mgpt demo exited with {proc.returncode}:\n{text[-5000:]}")
        for line in text.splitlines():
            if line.startswith("demo running at "):
                return proc, line.split()[3]
        time.sleep(0.5)
    proc.kill()
    pytest.fail(f"mgpt demo printed no URL in 300 s:\n{log_path.read_text()[-5000:]}")



def test_demo_uploads_a_photo_and_streams_an_answer(tiny_run_dir: Path, tmp_path: Path) -> None:
    import skimage.data
    from PIL import Image
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    photo = tmp_path / "astronaut.png"
    Image.fromarray(skimage.data.astronaut()).save(photo)
    port = _free_port()
    proc, url = _start_demo(tiny_run_dir, port, tmp_path / "demo.log")
    assert url == f"http://127.0.0.1:{port}/"  # loopback only unless --host
    browser = start_chromium(1280, 1000)
    screenshot = tmp_path / "demo.png"
    try:
        browser.get(url)
        wait = WebDriverWait(browser, 120, poll_frequency=0.25)
        upload = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#image input[type=file]"))[0]
        browser.find_element(By.CSS_SELECTOR, "#message textarea").send_keys("hello?")
        browser.find_element(By.CSS_SELECTOR, "#send").click()  # no image yet: an error toast, no crash
        wait.until(lambda b: any("Upload an image first" in t.text for t in _toasts(b)))
        for close in browser.find_elements(By.CSS_SELECTOR, ".toast-close"):
            close.click()
        wait.until(lambda b: not _toasts(b))
        browser.find_element(By.CSS_SELECTOR, "#message textarea").clear()
        upload.send_keys(str(photo))
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#image img"))
        picker = browser.find_element(By.CSS_SELECTOR, "#checkpoint input")
        assert picker.get_attribute("value") == "epoch_1"  # the run's last epoch by default
        picker.click()
        options = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#checkpoint [role=option]"))
        assert [o.get_attribute("aria-label") for o in options] == ["epoch_0", "epoch_1", "untrained"]
        picker.send_keys(Keys.ESCAPE)
        tokens = browser.find_element(By.CSS_SELECTOR, "#max-new-tokens input[type=number]")
        tokens.clear()
        tokens.send_keys("40", Keys.TAB)  # a slider: at most 40 new tokens
        browser.find_element(By.CSS_SELECTOR, "#message textarea").send_keys("What is in this picture?")
        # every text the answer bubble shows, recorded by the page itself on each DOM change: a tiny
        # model can stream its 40 tokens between two of selenium's polls
        browser.execute_script(_RECORD_BOT_TEXTS)
        browser.find_element(By.CSS_SELECTOR, "#send").click()

        def bot_text(b) -> str:
            bubbles = b.find_elements(By.CSS_SELECTOR, "#chatbot .message.bot")
            return bubbles[-1].text.strip() if bubbles else ""

        seen: list[str] = []

        def finished(b) -> bool:  # the answer is there and has stopped growing for 2 s
            text = bot_text(b)
            seen.append(text)
            return bool(text) and len(seen) > 8 and all(t == text for t in seen[-8:])

        wait.until(finished)
        answer = bot_text(browser)
        assert answer, "no answer appeared"
        shown = browser.execute_script("return window.__botTexts")
        assert len({t for t in shown if t}) > 1, f"the answer did not stream (it came all at once): {shown}"
        assert len(answer.split()) <= 40  # each word is at least one of the <= 40 new tokens
        user = browser.find_elements(By.CSS_SELECTOR, "#chatbot .message.user")
        assert user and user[-1].text.strip() == "What is in this picture?"
        browser.save_screenshot(str(screenshot))
        browser.find_element(By.CSS_SELECTOR, "#restart").click()
        wait.until(lambda b: not b.find_elements(By.CSS_SELECTOR, "#chatbot .message")
                   and not b.find_elements(By.CSS_SELECTOR, "#image img"))  # chat and image forgotten
        picker.click()  # switch the model to the untrained bridge: no error, the picker shows it
        untrained = "#checkpoint [aria-label=untrained]"
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, untrained))[0].click()
        wait.until(lambda b: picker.get_attribute("value") == "untrained")
        time.sleep(1)
        assert _toasts(browser) == []
    finally:
        if not screenshot.exists():
            browser.save_screenshot(str(screenshot))  # what the page showed when it failed
        browser.quit()
        stop(proc)
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")
