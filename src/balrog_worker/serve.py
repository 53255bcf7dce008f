"""`balrog-worker serve`: one game driven over stdin/stdout, for a GUI or a daemon.

Each line on stdin is a JSON command; each gets exactly one JSON line back on stdout
(logs go to stderr). Commands:

- ``{"cmd": "ping"}`` -> ``{"ok": true, "pong": true}``
- ``{"cmd": "init", "config": {...}}``: a MOSAIC cell config; loads the model -> the env
  id and its actions (per player for a multi-agent game: ``players``, ``actions``).
- ``{"cmd": "reset", "seed": 7}`` -> the first observation and the instructions.
- ``{"cmd": "select_action"}``: ask the model for the current observation's action (the
  game does not move) -> completion, candidate, the action to play, validity.
- ``{"cmd": "step", "action": "go forward"}``: play an action (an invalid one plays the
  default action) -> observation, reward, terminated, truncated, progression. In a
  multi-agent game ``{"cmd": "step", "actions": {"agent_0": "forward", ...}}``; players
  without one play what ``select_action`` chose for them.
- ``{"cmd": "stop"}`` -> ``{"ok": true, "stopped": true}``, then the process exits.

A bad command gets ``{"ok": false, "error": "..."}`` and the session goes on.
"""

from __future__ import annotations

import json
from typing import BinaryIO, TextIO

from balrog_worker import envs
from balrog_worker.clients import make_client, preflight
from balrog_worker.command_lines import MAX_COMMAND_BYTES, command_lines
from balrog_worker.episode import Episode
from balrog_worker.store import json_line


class Session:
    """One game at a time, driven through the episode loop (``episode.Episode``) by
    commands: what ``run`` plays to the end, step by step."""

    def __init__(self):
        self.config = self.client = self.episode = None
        self.decisions: dict = {}

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
        preflight(config.model, config.cache)
        self.close()
        self.config = config
        self.client = make_client(config.model, config.cache)
        game = envs.open_game(config.cell.env, config.cell.task, **config.game_options())
        try:
            game.reset(config.seed)
            actions = {player: list(game.actions(player)) for player in game.players}
        finally:
            game.close()
        reply = {"env": f"{config.cell.env}/{config.cell.task}"}
        if len(actions) == 1:
            return {**reply, "actions": next(iter(actions.values()))}
        return {**reply, "players": list(actions), "actions": actions}

    def _require(self, what: str):
        if self.config is None:
            raise ValueError(f"{what} before init")
        if what != "reset" and self.episode is None:
            raise ValueError(f"{what} before reset")

    @property
    def solo(self) -> bool:
        return len(self.episode.game.players) == 1

    def cmd_reset(self, command: dict) -> dict:
        self._require("reset")
        config = self.config
        if self.episode is not None:
            self.episode.close()
        self.episode = Episode.of_cell(config, self.client, 0, int(command.get("seed", 0)),
                                       capped=False)
        game = self.episode.game
        observations = self.episode.reset()
        self.decisions = {}
        views = {player: {"observation": observation.text, "context": observation.context,
                          "instructions": game.instructions(player)}
                 for player, observation in observations.items()}
        return next(iter(views.values())) if self.solo else {"players": views}

    def cmd_select_action(self, command: dict) -> dict:
        self._require("select_action")
        players = command.get("players") or self.episode.game.players
        decisions = self.episode.decide(tuple(players))
        self.decisions.update(decisions)
        game = self.episode.game
        replies = {}
        for player, decision in decisions.items():
            valid = game.is_valid(player, decision.candidate)
            replies[player] = {
                "completion": decision.completion.text, "candidate": decision.candidate,
                "reasoning": decision.reasoning, "valid": valid,
                "action": decision.candidate if valid else game.default_action(player),
                "input_tokens": decision.completion.input_tokens,
                "output_tokens": decision.completion.output_tokens}
        return next(iter(replies.values())) if self.solo else {"decisions": replies}

    def cmd_step(self, command: dict) -> dict:
        self._require("step")
        game = self.episode.game
        if self.solo:
            actions = {game.players[0]: str(command.get("action", ""))}
        else:
            given = command.get("actions") or {}
            if not isinstance(given, dict):
                raise ValueError("actions: give an object of player -> action")
            # Players with neither a given action nor a decision play their default.
            actions = {p: str(a) for p, a in given.items() if p in game.players}
        self.episode.advance(self.decisions, actions)
        valid = self.episode.last_valid
        self.decisions = {}
        episode = self.episode
        views = {player: {"observation": observation.text, "context": observation.context}
                 for player, observation in episode.observations.items()}
        outcome = {"terminated": episode.terminated, "truncated": episode.truncated,
                   "progression": game.progression(), "step": episode.step_index}
        if self.solo:
            player = game.players[0]
            return {"action": episode.last_actions[player], "valid": valid[player],
                    **views[player],
                    "reward": episode.last_rewards[player], **outcome}
        return {"players": views, "rewards": episode.last_rewards, "valid": valid, **outcome}

    def close(self) -> None:
        if self.episode is not None:
            self.episode.close()
            self.episode = None
        if self.client is not None:
            self.client.close()


def serve(stdin: BinaryIO, stdout: TextIO) -> int:
    """Answer each command line of ``stdin`` until ``stop`` or its end. Read it as bytes:
    a line that is not UTF-8 then gets an error answer, whatever the locale, instead of
    ending the session (as does a line too long to keep)."""
    session = Session()
    try:
        for raw in command_lines(stdin.fileno()):
            if raw is None:
                _answer(stdout, {"ok": False, "error": f"a command longer than "
                                 f"{MAX_COMMAND_BYTES:,} bytes: ignored"})
                continue
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                _answer(stdout, {"ok": False, "error": f"the command is not UTF-8 text "
                                 f"({error.reason} at byte {error.start})"})
                continue
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
