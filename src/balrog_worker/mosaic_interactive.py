"""MOSAIC's interactive mode (``--interactive``): one JSON command a line on stdin, MOSAIC's
events on stdout, through the one episode loop (``episode.Episode``).

Commands (MOSAIC's ``runtime.py`` ``InteractiveRuntime``): ``reset`` (seed) -> ``ready``;
``step`` -> the agent acts and the game steps -> ``step`` (with ``render_payload`` under
``--render-mode rgb_array``), and at the end ``episode_done`` followed by a new episode on
the same seed; ``init_agent`` / ``select_action`` (action-selector mode: the caller owns
the game and sends the observation) -> ``agent_ready`` / ``action_selected``; ``ping`` ->
``pong``; ``stop`` -> ``stopped``. Bad JSON, an unknown command or a step before reset get
an ``error`` event, and the session goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from balrog_worker import __version__, envs
from balrog_worker.agents import make_agent
from balrog_worker.clients import make_client
from balrog_worker.command_lines import MAX_COMMAND_BYTES, command_lines
from balrog_worker.config import CellConfig
from balrog_worker.envs.base import Observation
from balrog_worker.episode import Episode
from balrog_worker.mosaic import MosaicStream, episode_id, write_event
from balrog_worker.seeding import derive_seed
from balrog_worker.store import json_line


class ReaderGone(Exception):
    """stdout is closed: whoever sent the commands no longer reads the answers."""


def _quiet_stdout(out: TextIO) -> None:
    """Point the closed stdout at /dev/null, so that Python's flush at exit has nowhere
    to fail (a closed pipe would print an ignored BrokenPipeError)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


class InteractiveSession:
    def __init__(self, config: CellConfig, settings: dict, out: TextIO):
        self.config = config
        self.settings = settings
        self.out = out
        self.run_id = settings["run_id"]
        self.client = make_client(config.model, config.cache)
        self.stream = MosaicStream(self.run_id, settings, out, None)
        self.episode: Episode | None = None
        self.episode_index = 0
        self.seed = int(settings.get("seed") or 0)
        self.selector = None  # action-selector mode: (agent, player id, valid actions)
        self.selections = 0

    def emit(self, event: dict) -> None:
        if not write_event(self.out, json_line(event)):
            raise ReaderGone

    def run(self, stdin: BinaryIO) -> int:
        try:
            self.emit({"type": "init", "run_id": self.run_id,
                       "env": self.settings["env_name"], "task": self.settings["task"],
                       "version": __version__})
            for line in command_lines(stdin.fileno()):
                if line is None:
                    self.emit({"type": "error", "run_id": self.run_id, "message":
                               f"a command longer than {MAX_COMMAND_BYTES:,} bytes: ignored"})
                    continue
                if self.serve(line.decode("utf-8", errors="replace").strip()):
                    return 0
        except ReaderGone:
            _quiet_stdout(self.out)
            print(f"balrog-worker: {self.run_id}: stdout was closed; the session ends",
                  file=sys.stderr)
            return 1
        finally:
            if self.episode is not None:
                self.episode.close()
            self.client.close()
        return 0

    def serve(self, line: str) -> bool:
        """Answer one command line; True once it was ``stop``."""
        if not line:
            return False
        try:
            command = json.loads(line)
            if not isinstance(command, dict):
                raise ValueError("a command is a JSON object")
            name = command.get("cmd")
            if name == "stop":
                self.emit({"type": "stopped", "run_id": self.run_id})
                return True
            handler = getattr(self, f"cmd_{name}", None) if isinstance(name, str) else None
            if handler is None:
                raise ValueError(f"unknown command {name!r}; use reset, step, init_agent, "
                                 "select_action, ping or stop")
            handler(command)
        except ReaderGone:
            raise
        except Exception as error:  # one bad command must not end the session
            self.emit({"type": "error", "run_id": self.run_id,
                       "message": f"{type(error).__name__}: {error}"})
        return False

    def cmd_ping(self, _command: dict) -> None:
        self.emit({"type": "pong", "run_id": self.run_id})

    def cmd_reset(self, command: dict) -> None:
        if command.get("seed") is not None:
            self.seed = int(command["seed"])
        self._start()
        self.emit({"type": "ready", "run_id": self.run_id, "env": self.settings["env_name"],
                   "task": self.settings["task"], "seed": self.seed,
                   "observation": self._observation_text()})

    def _start(self) -> None:
        config = self.config
        if self.episode is not None:
            self.episode.close()
        self.episode = Episode.of_cell(config, self.client, self.episode_index, self.seed)
        self._started = time.perf_counter()
        self.episode.reset()

    def _observation_text(self) -> str:
        texts = [o.text for o in self.episode.observations.values()]
        return texts[0] if len(texts) == 1 else json.dumps(
            {p: o.text for p, o in self.episode.observations.items()})

    def cmd_step(self, _command: dict) -> None:
        if self.episode is None:
            raise ValueError("step before reset")
        records = self.episode.advance(self.episode.decide())
        for record in records:
            event = self.stream.step(record.to_dict())
            event.update(client_name=self.settings["client_name"],
                         model_id=self.settings["model_id"],
                         agent_type=self.settings["agent_type"])
            if self.settings.get("render_mode") == "rgb_array":
                event["render_payload"] = self._render(record.agent_id)
            self.emit(event)
        if self.episode.done:
            summary = self.episode.summary(time.perf_counter() - self._started).to_dict()
            self.emit({**self.stream.episode(summary), "type": "episode_done"})
            self.episode_index += 1
            self._start()  # MOSAIC begins the next episode on the same seed

    def _render(self, player: str) -> dict:
        frame = self.episode.game.frame(player)
        # MOSAIC's payload: the frame as nested lists (rows of [r, g, b] pixels).
        return {"mode": "rgb", "rgb": frame.tolist(), "width": int(frame.shape[1]),
                "height": int(frame.shape[0])}

    def cmd_init_agent(self, command: dict) -> None:
        """Action-selector mode: the caller owns the game; this worker only chooses."""
        config = self.config
        player = str(command.get("player_id", "player_0"))
        instructions = command.get("instruction_prompt")
        actions: tuple[str, ...] = ()
        if envs.FAMILIES[config.cell.env].multi_agent:
            # Our own prompt for this player of the game, from a game set up as the cell's.
            game = envs.open_game(config.cell.env, config.cell.task, **config.game_options())
            try:
                game.reset(self.seed)
                ours = f"agent_{self.settings.get('agent_id', 0)}"
                instructions = instructions or game.instructions(ours)
                actions = game.actions(ours)
            finally:
                game.close()
        instructions = instructions or (
            f"You are {player} in {command.get('game_name', 'a game')}. Each turn you get the "
            "state of the game; answer with your action only.")
        agent = make_agent(config, self.client, instructions, player=player)
        self.selector = (agent, player, actions)
        self.emit({"type": "agent_ready", "run_id": self.run_id,
                   "game_name": command.get("game_name", "unknown"), "player_id": player,
                   "mode": "action_selector"})

    def cmd_select_action(self, command: dict) -> None:
        if self.selector is None:
            raise ValueError("select_action before init_agent")
        agent, player, actions = self.selector
        observation = command.get("observation", "")
        text = observation if isinstance(observation, str) else json.dumps(observation)
        legal = [str(move) for move in (command.get("info") or {}).get("legal_moves", [])]
        if legal:
            text += f"\nLegal moves: {', '.join(legal)}"
        valid = tuple(legal) or actions
        seed = derive_seed(self.seed, "select", player, self.selections)
        self.selections += 1
        decision = agent.act(Observation(text), valid, seed)
        chosen = decision.candidate if (not valid or decision.candidate in valid) else (
            valid[0])
        agent.record(chosen)
        index = valid.index(chosen) if chosen in valid else None
        self.emit({"type": "action_selected", "run_id": self.run_id,
                   "player_id": command.get("player_id", player),
                   "action": index if index is not None else chosen, "action_str": chosen,
                   "reasoning": decision.reasoning or "",
                   "input_tokens": decision.completion.input_tokens,
                   "output_tokens": decision.completion.output_tokens,
                   "timestamp": datetime.now(UTC).isoformat(),
                   "valid": decision.candidate in valid if valid else True,
                   "episode_id": episode_id(self.run_id, self.episode_index)})
