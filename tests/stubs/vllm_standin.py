"""Stands in for the `vllm` executable where no GPU is (`vllm serve MODEL --host H --port P
...`): after a startup delay it answers /v1/models and /v1/chat/completions in OpenAI's
format (the stub's bodies), as vLLM's server does once its weights are loaded.

It appends its argv and pid to $STANDIN_LOG (one JSON line) so a test can check what it
was started with; $STANDIN_EXIT makes it exit at once with that code (a server that
fails to start); $STANDIN_DELAY_S is how long it "loads" before listening.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.stubs.openai_server import ok_body

ANSWER = "go forward"


def main() -> int:
    parser = argparse.ArgumentParser(prog="vllm")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("model")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    args, _ = parser.parse_known_args()  # the other flags are vLLM's business
    with open(os.environ["STANDIN_LOG"], "a") as log:
        log.write(json.dumps({"argv": sys.argv[1:], "pid": os.getpid()}) + "\n")
    if "STANDIN_EXIT" in os.environ:
        print("standin: CUDA error: no GPU found", file=sys.stderr)
        return int(os.environ["STANDIN_EXIT"])
    time.sleep(float(os.environ.get("STANDIN_DELAY_S", "1")))

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_):
            pass

        def _send(self, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._send({"object": "list", "data": [{"id": args.model, "object": "model"}]})

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(ok_body(request, ANSWER, self.path))

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # vLLM shuts down on SIGTERM
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
