"""`balrog-worker serve`: one game driven over stdin/stdout, for a GUI or a daemon.

Each line on stdin is a JSON command; each gets exactly one JSON line back on stdout
(logs go to stderr). Commands:

- ``{"cmd": "ping"}`` -> ``{"ok": true, "pong": true}``
- ``{"cmd": "init", "config": {...}}``: a MOSAIC cell config (single-agent envs); loads
  the model and the game -> the env id and its actions.
- ``{"cmd": "reset", "seed": 7}`` -> the first observation and the instructions.
- ``{"cmd": "select_action"}``: ask the model for the current observation's action (the
  game does not move) -> completion, candidate, the action to play, validity.
- ``{"cmd": "step", "action": "go forward"}``: play an action (an invalid one plays the
  default action) -> observation, reward, terminated, truncated, progression.
- ``{"cmd": "stop"}`` -> ``{"ok": true, "stopped": true}``, then the process exits.

A bad command gets ``{"ok": false, "error": "..."}`` and the session goes on.
"""

from __future__ import annotations

import json
from typing import TextIO

from balrog_worker import envs
from balrog_worker.agents import invalid_action_note, make_agent
from balrog_worker.clients import make_client, preflight
from balrog_worker.seeding import derive_seed
from balrog_worker.store import json_line


class Session:
    def __init__(self):
        self.config = self.client = self.game = self.agent = self.observation = None
        self.seed = self.step_index = 0
        self.note = ""

    def handle(self, command: dict) -> dict:
        name = command.get("cmd")
        handler = getattr(self, f"cmd_{name}", None) if isinstance(name, str) else None
        if handler is None:
            raise ValueError(f"unknown command {name!r}; use init, reset, step, "
                             "select_action, ping or stop")
        return handler(command)

    def cmd_ping(self, _command: dict) -> dict:
        return {"pong": True}

    def cmd_init(self, command: dict) -> dict:
        from balrog_worker.worker_config import mosaic_cell_config

        config = mosaic_cell_config(command.get("config") or {}, source="init config")
        if envs.FAMILIES[config.cell.env].multi_agent:
            raise ValueError("serve drives single-agent games; run multi-agent cells with "
                             "`balrog-worker run --config`")
        preflight(config.model)
        self.close()
        self.config = config
        self.client = make_client(config.model, config.cache)
        self.game = envs.make(config.cell.env, config.cell.task)
        return {"env": f"{config.cell.env}/{config.cell.task}", "actions": list(self.game.actions)}

    def _require(self, what: str):
        if self.game is None:
            raise ValueError(f"{what} before init")
        if what != "reset" and self.observation is None:
            raise ValueError(f"{what} before reset")

    def cmd_reset(self, command: dict) -> dict:
        self._require("reset")
        self.seed = int(command.get("seed", 0))
        self.observation = self.game.reset(self.seed)
        self.step_index, self.note = 0, ""
        self.agent = make_agent(self.config, self.client, self.game.instructions())
        return {"observation": self.observation.text, "context": self.observation.context,
                "instructions": self.game.instructions()}

    def cmd_select_action(self, _command: dict) -> dict:
        self._require("select_action")
        decision = self.agent.act(self.observation, tuple(self.game.actions),
                                  derive_seed(self.seed, self.step_index, "agent_0"), self.note,
                                  oracle=self.game.oracle_action)
        valid = self.game.is_valid(decision.candidate)
        return {"completion": decision.completion.text, "candidate": decision.candidate,
                "reasoning": decision.reasoning, "valid": valid,
                "action": decision.candidate if valid else self.game.default_action,
                "input_tokens": decision.completion.input_tokens,
                "output_tokens": decision.completion.output_tokens}

    def cmd_step(self, command: dict) -> dict:
        self._require("step")
        action = str(command.get("action", ""))
        valid = self.game.is_valid(action)
        played = action if valid else self.game.default_action
        if self.agent is not None:
            self.agent.record(played)  # closes the turn select_action opened, if any
        outcome = self.game.step(played)
        self.observation = outcome.observation
        self.note = ("" if valid or not self.config.agent.invalid_feedback
                     else invalid_action_note(self.game.default_action))
        self.step_index += 1
        return {"action": played, "valid": valid, "observation": outcome.observation.text,
                "context": outcome.observation.context, "reward": outcome.reward,
                "terminated": outcome.terminated, "truncated": outcome.truncated,
                "progression": self.game.progression(), "step": self.step_index}

    def close(self) -> None:
        if self.game is not None:
            self.game.close()
        if self.client is not None:
            self.client.close()


def serve(stdin: TextIO, stdout: TextIO) -> int:
    session = Session()
    try:
        for line in stdin:
            if not line.strip():
                continue
            try:
                command = json.loads(line)
                if not isinstance(command, dict):
                    raise ValueError("a command is a JSON object")
                if command.get("cmd") == "stop":
                    _answer(stdout, {"ok": True, "stopped": True})
                    return 0
                reply = {"ok": True, **session.handle(command)}
            except Exception as error:  # one bad command must not end the session
                reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            _answer(stdout, reply)
    finally:
        session.close()
    return 0


def _answer(stdout: TextIO, reply: dict) -> None:
    stdout.write(json_line(reply))
    stdout.flush()
