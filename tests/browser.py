"""Headless Chromium driven over the DevTools protocol, for tests that click and press
keys (Debian's chromium; the websockets client comes with google-genai)."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    if os.environ.get("CI"):
        pytest.fail("no headless browser: .ci/run installs Debian's chromium")
    pytest.skip("no chromium on this machine (apt-get install chromium)")


class Browser:
    """One headless Chromium page: ``open`` a URL, ``js`` to evaluate, ``wait_for`` a
    condition, ``press`` a key, ``screenshot`` as an RGB array."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900):
        from websockets.sync.client import connect

        self.process = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", "--remote-debugging-port=0", f"--user-data-dir={profile}",
             "--allow-file-access-from-files", f"--window-size={width},{height}",
             "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        deadline = time.monotonic() + 60
        while port is None and time.monotonic() < deadline:
            line = self.process.stderr.readline()
            if found := re.search(r"ws://127\.0\.0\.1:(\d+)/", line):
                port = int(found.group(1))
        assert port, "chromium did not open its debugging port"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list") as response:
            page = next(t for t in json.loads(response.read()) if t["type"] == "page")
        self.socket = connect(page["webSocketDebuggerUrl"], max_size=None, legacy=True)
        self._ids = itertools.count(1)

    def call(self, method: str, **params) -> dict:
        ident = next(self._ids)
        self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def open(self, url: str) -> None:
        self.call("Page.navigate", url=url)

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if value := self.js(expression):
                    return value
            except RuntimeError:
                pass  # the page is still loading
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def press(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            self.call("Input.dispatchKeyEvent", type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code)

    def screenshot(self) -> np.ndarray:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(30)


def not_blank(pixels: np.ndarray) -> bool:
    """A screenshot that shows something: many colours, not one flat background."""
    flat = pixels.reshape(-1, 3)
    return len(np.unique(flat[:: max(1, len(flat) // 50_000)], axis=0)) > 20
