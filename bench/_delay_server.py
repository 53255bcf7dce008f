"""An OpenAI-compatible chat-completions server that answers every request after a fixed
delay, for the benchmarks: a model whose only cost is its latency.

    python bench/_delay_server.py [--delay 0.2] [--answer "turn left"]

Prints its port on the first line of stdout, then serves until killed. ``GET /stats``
answers ``{"requests": N}``, the chat completions served so far. It runs in its own process
(so it never competes with the harness for the GIL) on one asyncio loop, where an idle
keep-alive connection costs a socket and a protocol object, not a thread: hundreds of
requests in flight cost little CPU (about 0.05 ms a request; a real model server does not
share the harness's cores at all). HTTP/1.1 is parsed by hand, enough for the ``openai``
SDK.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path


class DelayServer:
    def __init__(self, delay: float, answer: str):
        self.delay = delay
        self.answer = answer
        self.requests = 0
        self.largest_request = 0  # bytes of the largest request body received
        words = len(answer.split())
        self.body = json.dumps({
            "id": "chatcmpl-delay", "object": "chat.completion", "created": 1_700_000_000,
            "model": "delay",
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                         "message": {"role": "assistant", "content": answer}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": words,
                      "total_tokens": 100 + words},
        }).encode()

    def stats_body(self) -> bytes:
        return json.dumps({"requests": self.requests,
                           "largest_request": self.largest_request}).encode()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        # A backlog above the clients' connection pool: 256 connections may open at once.
        server = await loop.create_server(lambda: _Connection(self), "127.0.0.1", 0,
                                          backlog=2048)
        print(server.sockets[0].getsockname()[1], flush=True)
        async with server:
            await server.serve_forever()


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed from the bytes as they come (no stream
    reader and no coroutine per request: the server's CPU is taken from the cores the
    harness is measured on), each chat completion answered ``delay`` seconds after it
    arrived, in order."""

    def __init__(self, server: DelayServer):
        self.server, self.buffer = server, bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            lines = bytes(self.buffer[:end]).split(b"\r\n")
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            if len(self.buffer) < end + 4 + length:
                return  # the body is still coming
            del self.buffer[:end + 4 + length]
            server = self.server
            server.largest_request = max(server.largest_request, length)
            if lines[0].startswith(b"POST"):
                server.requests += 1
                asyncio.get_running_loop().call_later(server.delay, self.answer, server.body,
                                                      close)
            else:
                self.answer(server.stats_body(), close)

    def answer(self, body: bytes, close: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return  # the client went away
        # One write: the head and the body leave in one segment, one system call.
        self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%b" % (len(body), body))
        if close:
            self.transport.close()

    def connection_lost(self, error) -> None:
        self.transport = None


class DelayServerProcess:
    """The server in a child process, for ``with``: ``url`` is its ``/v1`` base URL."""

    def __init__(self, delay: float = 0.2, answer: str = "turn left", repeat: int = 1):
        self._args = [sys.executable, str(Path(__file__)), "--delay", str(delay),
                      "--answer", answer, "--repeat", str(repeat)]

    def __enter__(self) -> DelayServerProcess:
        self._process = subprocess.Popen(self._args, stdout=subprocess.PIPE, text=True)
        self.port = int(self._process.stdout.readline())
        self.pid = self._process.pid
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def requests(self) -> int:
        """Chat completions served so far."""
        return self.stats()["requests"]

    def stats(self) -> dict:
        """``requests`` served so far and ``largest_request`` (bytes of a body)."""
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats") as response:
            return json.loads(response.read())

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self._process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc) -> None:
        self._process.terminate()
        self._process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds before each answer")
    parser.add_argument("--answer", default="turn left", help="the text of every answer")
    parser.add_argument("--repeat", type=int, default=1,
                        help="the answer is --answer this many times (10 MB answers)")
    args = parser.parse_args()
    asyncio.run(DelayServer(args.delay, args.answer * args.repeat).serve())  # until killed


if __name__ == "__main__":
    main()
