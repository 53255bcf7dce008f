"""The embedded model through the harness: tokens/s of the ``local`` backend's client
(``LlamaCppClient``) against ``llama_cpp.Llama`` called directly, on the same prompts with
the same settings.

    python bench/local_model.py [--prompts 8] [--passes 3] [--max-tokens 32] [--threads 2]

Both sides load the same GGUF file (qwen2.5-coder-0.5b-instruct-q4_k_m, found offline by
``weights.resolve_gguf``) with the same n_ctx and threads, in this one process, and answer
the same chat messages (a game's instructions and one of its observations) with the same
seed, temperature and max_tokens, so both produce the same tokens. Each is warmed with one
call; then several passes over the prompts alternate which side goes first, and each call
counts with its best time over the passes: on a shared machine, other processes only ever
add time.
Target (issue 8): client tokens/s at least 0.9 of the direct calls'.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import time

from _common import header, load_average, verdict

from balrog_worker import envs
from balrog_worker.clients.base import Message, Request
from balrog_worker.clients.local import LlamaCppClient
from balrog_worker.clients.weights import DEFAULT_MODEL, resolve_gguf

TARGET_RATIO = 0.9
# Asks for a few sentences, so that max_tokens rather than a two-word answer decides the
# length and generation, not only prompt evaluation, is measured.
ASK = "Say in two or three sentences what you see and what you will do, then name the action."


def prompts(count: int, env_id: str) -> list[tuple[Message, ...]]:
    """``count`` chat prompts: the game's instructions and the first observation of
    ``count`` seeds."""
    env, task = env_id.split("/")
    game = envs.make(env, task)
    found = []
    with contextlib.redirect_stdout(io.StringIO()):  # BabyAI's level generator chatters
        for seed in range(count):
            observation = game.reset(seed)
            found.append((Message("system", game.instructions()),
                          Message("user", f"{observation.text}\n\n{ASK}")))
    game.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--passes", type=int, default=3, help="each call's best time counts")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads, both sides")
    parser.add_argument("--n-ctx", type=int, default=8192, help="as in params.yaml")
    parser.add_argument("--temperature", type=float, default=0.7, help="as in params.yaml")
    parser.add_argument("--env", default="babyai/goto", help="where the prompts come from")
    args = parser.parse_args()
    header("embedded model: harness client vs llama_cpp.Llama", ("llama-cpp-python",))
    from llama_cpp import Llama

    print(f"# {DEFAULT_MODEL}, n_ctx {args.n_ctx}, {args.threads} threads, temperature "
          f"{args.temperature}, max_tokens {args.max_tokens}, {args.prompts} prompts "
          f"from {args.env}, {args.passes} passes")
    client = LlamaCppClient(DEFAULT_MODEL, n_ctx=args.n_ctx, threads=args.threads,
                            temperature=args.temperature, max_tokens=args.max_tokens)
    direct = Llama(model_path=str(resolve_gguf(DEFAULT_MODEL)), n_ctx=args.n_ctx,
                   n_threads=args.threads, verbose=False)

    def via_client(messages, seed) -> tuple[str, int, int]:
        completion = client.complete(Request(messages=messages, valid_actions=(), seed=seed))
        return completion.text, completion.input_tokens, completion.output_tokens

    def via_llama(messages, seed) -> tuple[str, int, int]:
        response = direct.create_chat_completion(
            messages=[{"role": m.role, "content": m.content} for m in messages], seed=seed,
            temperature=args.temperature, max_tokens=args.max_tokens)
        usage = response["usage"]
        return (response["choices"][0]["message"]["content"], usage["prompt_tokens"],
                usage["completion_tokens"])

    sides = {"client": via_client, "direct": via_llama}
    chats = prompts(args.prompts + 1, args.env)
    for side in sides.values():  # warm-up: first evaluation, the shared system prompt
        side(chats[-1], 12345)
    # Passes over all prompts: a context's previous prompt is always another one, so every
    # call reuses only the system prompt (the same work in every pass). A call's best time
    # over the passes is its time with the least interference from other processes.
    best = {name: [float("inf")] * args.prompts for name in sides}
    answers: dict[tuple[str, int], set] = {}
    tokens = {name: {"prompt": 0, "output": 0} for name in sides}
    for repeat in range(args.passes):
        for index, messages in enumerate(chats[:-1]):
            order = list(sides) if (index + repeat) % 2 == 0 else list(reversed(sides))
            for name in order:
                start = time.perf_counter()
                text, prompt_tokens, output_tokens = sides[name](messages, 1000 + index)
                best[name][index] = min(best[name][index], time.perf_counter() - start)
                answers.setdefault((name, index), set()).add(text)
                if repeat == 0:
                    tokens[name]["prompt"] += prompt_tokens
                    tokens[name]["output"] += output_tokens
    client.close()
    direct.close()

    print(f"{'side':8} {'prompt tok':>10} {'output tok':>10} {'best s':>7} {'output tok/s':>12} "
          f"{'all tok/s':>9}")
    rate = {}
    for name in sides:
        seconds, counts = sum(best[name]), tokens[name]
        rate[name] = counts["output"] / seconds
        print(f"{name:8} {counts['prompt']:>10} {counts['output']:>10} {seconds:>7.2f} "
              f"{rate[name]:>12.1f} {(counts['prompt'] + counts['output']) / seconds:>9.1f}")
    same = sum(answers[("client", i)] == answers[("direct", i)] and len(answers[("client", i)]) == 1
               for i in range(args.prompts))
    print(f"# one and the same answer on both sides in every pass: {same} of {args.prompts} "
          f"prompts; load {load_average()}")
    # Both sides generate the same tokens, so a prompt's speed ratio is its time ratio:
    # their spread shows how much the machine's load still moved the figure.
    paired = sorted(d / c for c, d in zip(best["client"], best["direct"], strict=True))
    print(f"# per-prompt client / direct: median {statistics.median(paired):.2f}, "
          f"range {paired[0]:.2f} to {paired[-1]:.2f}")
    print(verdict("client / direct output tokens/s", rate["client"] / rate["direct"],
                  TARGET_RATIO))


if __name__ == "__main__":
    main()
