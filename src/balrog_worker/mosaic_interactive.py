"""MOSAIC's interactive mode (``--interactive``): one JSON command a line on stdin, MOSAIC's
events on stdout, through the one episode loop (``episode.Episode``).

Commands (MOSAIC's ``runtime.py`` ``InteractiveRuntime``): ``reset`` (seed; MOSAIC's GUI
also sends ``max_steps``) -> ``ready``; ``step`` -> the agents act and the game steps ->
one ``step`` event (with ``render_payload`` under ``--render-mode rgb_array``: the whole
scene, as the GUI shows it), and at the end ``episode_done`` followed by a new episode on
the same seed; ``init_agent`` / ``select_action`` (action-selector mode: the GUI owns the
game, see ``mosaic_selector``) -> ``agent_ready`` / ``action_selected``; ``ping`` ->
``pong``; ``stop`` -> ``stopped``. Bad JSON, an unknown command or a step before reset get
an ``error`` event, and the session goes on. Events go out through ``EventPipe``, one line
per read of MOSAIC's reader.

A game of several players answers a ``step`` with one event: the step's sums at the top
(MOSAIC reads one ``step`` event per ``step`` command) and each player's part in
``agents``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from balrog_worker import __version__
from balrog_worker.agents import AGENTS, make_agent
from balrog_worker.clients import make_client
from balrog_worker.command_lines import MAX_COMMAND_BYTES, command_lines
from balrog_worker.config import MAX_STEPS, AgentSpec, CellConfig, ModelSpec
from balrog_worker.envs.base import Observation
from balrog_worker.episode import Episode
from balrog_worker.mosaic_events import EventPipe, MosaicStream, ReaderGone, episode_id
from balrog_worker.mosaic_selector import (
    MULTIGRID_ACTIONS,
    MULTIGRID_ENVS,
    NUMBERED_MOVES,
    choose,
    default_instructions,
    legal_indices,
    observation_text,
    read_answer,
)
from balrog_worker.seeding import derive_seed
from balrog_worker.store import json_line


def _whole(value: object, name: str, low: int, high: int) -> int | None:
    """A command's whole-number field (None where it is absent), or ValueError."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ValueError(f"reset: {name} must be a whole number from {low} to {high:,}, "
                         f"not {str(value)[:40]!r}")
    return value


def _quiet_stdout(out: TextIO) -> None:
    """Point the closed stdout at /dev/null, so that Python's flush at exit has nowhere
    to fail (a closed pipe would print an ignored BrokenPipeError)."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())


class InteractiveSession:
    """One interactive session. ``config`` is the cell the session plays (None where the
    GUI owns the game: the session then only chooses); ``model`` and ``agent`` are the
    model and agent that answer."""

    def __init__(self, config: CellConfig | None, settings: dict, out: TextIO, *,
                 model: ModelSpec, agent: AgentSpec):
        self.config = config
        self.settings = settings
        self.out = out
        self.pipe = EventPipe(out)
        self.run_id = settings["run_id"]
        self.agent_spec = agent
        self.client = make_client(model, config.cache if config else "on")
        self.stream = MosaicStream(self.run_id, settings, None, None)
        self.episode: Episode | None = None
        self.episode_index = 0
        self.seed = int(settings.get("seed") or 0)
        self.max_steps = config.max_steps if config else None
        self.selector = None  # action-selector mode: (agent, player id, game name)
        self.selections = 0

    def emit(self, event: dict) -> None:
        self.pipe.write(json_line(event))

    def error(self, message: str) -> None:
        self.emit({"type": "error", "run_id": self.run_id, "message": message})

    def run(self, stdin: BinaryIO) -> int:
        try:
            self.emit({"type": "init", "run_id": self.run_id,
                       "env": self.settings["env_name"], "task": self.settings["task"],
                       "version": __version__})
            for line in command_lines(stdin.fileno()):
                if line is None:
                    self.error(f"a command longer than {MAX_COMMAND_BYTES:,} bytes: ignored")
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
            name = name.lower() if isinstance(name, str) else name  # as MOSAIC's worker
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
        except json.JSONDecodeError as error:
            self.error(f"Invalid JSON: {error}")
        except Exception as error:  # one bad command must not end the session
            self.error(f"{type(error).__name__}: {error}")
        return False

    def cmd_ping(self, _command: dict) -> None:
        self.emit({"type": "pong", "run_id": self.run_id})

    # ------------------------------------------------------------ the worker owns the game

    def cmd_reset(self, command: dict) -> None:
        if self.config is None:
            raise ValueError(f"{self.settings['env_name']}: the GUI owns this game; the "
                             "worker only chooses (init_agent, then select_action)")
        seed = _whole(command.get("seed"), "seed", 0, 2**32 - 1)
        steps = _whole(command.get("max_steps"), "max_steps", 1, MAX_STEPS)
        if seed is not None:
            self.seed = seed
        # The GUI's cap for this reset, or the launch's where it sends none.
        self.max_steps = steps if steps is not None else self.config.max_steps
        self.episode_index = 0  # a reset starts the count again, as MOSAIC's worker does
        self._start()
        ready = {"type": "ready", "run_id": self.run_id, "env": self.settings["env_name"],
                 "task": self.settings["task"], "seed": self.seed, "episode_index": 0,
                 "step_index": 0, "observation": self._observation_text()}
        if self.settings.get("render_mode") == "rgb_array":
            ready["render_payload"] = self._render()
        self.emit(ready)

    def _start(self) -> None:
        config = dataclasses.replace(self.config, max_steps=self.max_steps)
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
            raise ValueError("Environment not initialized. Send reset first.")
        records = [record.to_dict() for record in self.episode.advance(self.episode.decide())]
        if not records:
            raise ValueError("no player acted this step")
        event = self.stream.step(records[0])
        if len(records) > 1:  # one event a step: the step's sums, each player's part
            players = [self.stream.step(record) for record in records]
            event.update(
                reward=sum(part["reward"] for part in players),
                action=json.dumps({r["agent_id"]: r["action"] for r in records}),
                observation=json.dumps({r["agent_id"]: r["observation"] for r in records}),
                llm_response=json.dumps({r["agent_id"]: r["completion"] for r in records}),
                llm_input_tokens=sum(r["input_tokens"] for r in records),
                llm_output_tokens=sum(r["output_tokens"] for r in records),
                valid=all(r["valid"] for r in records),
                agents=[{key: part[key] for key in (
                    "agent_id", "observation", "action", "reward", "valid", "reasoning",
                    "llm_response", "llm_input_tokens", "llm_output_tokens", "latency_s")}
                    for part in players])
            event.pop("agent_id")
            event["info"] = {"agents": [r["agent_id"] for r in records]}
        event.update(episode_index=self.episode_index, client_name=self.settings["client_name"],
                     model_id=self.settings["model_id"],
                     agent_type=self.settings["agent_type"])
        if self.settings.get("render_mode") == "rgb_array":
            event["render_payload"] = self._render()
        self.emit(event)
        if self.episode.done:
            summary = self.episode.summary(time.perf_counter() - self._started).to_dict()
            summary["episode_index"] = self.episode_index
            self.emit({**self.stream.episode(summary), "type": "episode_done"})
            self.episode_index += 1
            self._start()  # MOSAIC begins the next episode on the same seed

    def _render(self) -> dict:
        frame = self.episode.game.display()
        # MOSAIC's payload: the frame as nested lists (rows of [r, g, b] pixels).
        return {"mode": "rgb", "rgb": frame.tolist(), "width": int(frame.shape[1]),
                "height": int(frame.shape[0])}

    # ------------------------------------------------------------- the GUI owns the game

    def cmd_init_agent(self, command: dict) -> None:
        """Action-selector mode: the GUI owns the game; this worker only chooses."""
        player = str(command.get("player_id", "player_0"))[:100]
        game_name = str(command.get("game_name", "unknown"))[:200]
        instructions = command.get("instruction_prompt")
        if not isinstance(instructions, str) or not instructions.strip():
            instructions = self._instructions(player, game_name)
        if self.config is not None:
            agent = make_agent(self.config, self.client, instructions, player=player)
        else:
            agent = AGENTS[self.agent_spec.type](self.agent_spec, self.client, instructions,
                                                 player=player)
        self.selector = (agent, player, game_name)
        self.selections = 0
        self.emit({"type": "agent_ready", "run_id": self.run_id, "game_name": game_name,
                   "player_id": player, "mode": "action_selector"})

    def _instructions(self, player: str, game_name: str) -> str:
        config = self.config
        if config is not None and config.cell.env == "multigrid":
            # Our own prompt for this player, from a game set up as the cell's.
            from balrog_worker import envs

            game = envs.open_game(config.cell.env, config.cell.task, **config.game_options())
            try:
                game.reset(self.seed)
                ours = player if player in game.players else (
                    f"agent_{self.settings.get('agent_id', 0)}")
                return game.instructions(ours)
            finally:
                game.close()
        return default_instructions(game_name, player, self.settings["env_name"])

    def cmd_select_action(self, command: dict) -> None:
        if self.selector is None:
            raise ValueError("Agent not initialized. Send init_agent first.")
        agent, player, game_name = self.selector
        env_name = self.settings["env_name"]
        info = command.get("info") if isinstance(command.get("info"), dict) else {}
        legal = info.get("legal_moves") or []
        legal = [str(move) for move in legal] if isinstance(legal, list) else []
        mask = legal_indices(command.get("action_mask"))
        text = observation_text(command.get("observation", ""), game_name, env_name)
        if legal:
            text += f"\nLegal moves: {', '.join(legal)}"
        multigrid = env_name in MULTIGRID_ENVS or (
            self.config is not None and self.config.cell.env == "multigrid")
        names = MULTIGRID_ACTIONS if multigrid else ()
        valid = tuple(legal) or names or tuple(map(str, mask or ()))
        seed = derive_seed(self.seed, "select", player, self.selections)
        self.selections += 1
        decision = agent.act(Observation(text), valid, seed)
        move, reasoning = read_answer(decision.completion.text)
        selection = choose(move, legal, mask, action_names=names,
                           numbered=NUMBERED_MOVES.get(game_name))
        agent.record(selection.action_str)
        event = {"type": "action_selected", "run_id": self.run_id,
                 "player_id": str(command.get("player_id", player))[:100],
                 "action": selection.action,
                 "action_str": selection.action_str,
                 "reasoning": decision.reasoning or reasoning,
                 "input_tokens": decision.completion.input_tokens,
                 "output_tokens": decision.completion.output_tokens,
                 "timestamp": datetime.now(UTC).isoformat(), "valid": selection.valid,
                 "llm_response": decision.completion.text,
                 "episode_id": episode_id(self.run_id, self.episode_index)}
        if selection.defaulted:
            event["defaulted"] = selection.defaulted
        self.emit(event)
