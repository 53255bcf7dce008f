"""One episode of any game: the single step protocol that ``run``, ``serve`` and the
MOSAIC interface all drive.

Each step, every acting player's agent answers (players asked at once, each from its own
history), the answer is validated and the player's default action played when invalid,
the call's usage is accounted, and one step record per player is built from exactly what
its model was shown. ``play`` runs the steps to the end; an interactive caller runs
``decide`` and ``advance`` itself.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from balrog_worker import envs
from balrog_worker.agents import Agent, Decision, invalid_action_note, make_agent
from balrog_worker.clients.base import Client, Completion
from balrog_worker.clients.images import encode_png
from balrog_worker.config import CellConfig, ModelSpec
from balrog_worker.cooperative import all_at_once, cooperative
from balrog_worker.envs.base import LazyActions, Observation, PlayerGame
from balrog_worker.records import (
    FOCAL,
    OPPONENT,
    CellKeys,
    EpisodeRecord,
    StepRecord,
    Usage,
    recorded_candidate,
)
from balrog_worker.seeding import derive_seed
from balrog_worker.vocab import PROMPT_WORDING


def usage_of(completion: Completion, cost_usd: float = 0.0) -> Usage:
    return Usage(input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                 cached_input_tokens=completion.cached_input_tokens,
                 reasoning_tokens=completion.reasoning_tokens, retries=completion.retries,
                 cost_usd=cost_usd)


@dataclass(frozen=True)
class EpisodeSettings:
    """What an episode is: its cell, its index and seed, its step cap, and the protocol
    settings its records carry."""

    keys: CellKeys
    index: int
    seed: int
    max_steps: int | None
    invalid_feedback: bool = True
    answer_parsing: str | None = None
    prompt_wording: str = PROMPT_WORDING
    extra: tuple[tuple[str, object], ...] = ()  # more episode facts (demonstrations...)


class Episode:
    """An episode of ``game``. ``agents(player, instructions)`` makes each player's agent
    at reset; ``cost`` prices a player's call; ``answerer`` names the model and side that
    answer for a player (default: the cell's model, focal); ``on_step`` receives each step
    record as it is made; ``check_stop`` may raise to abandon the episode between steps."""

    def __init__(self, game: PlayerGame, agents: Callable[[str, str], Agent],
                 settings: EpisodeSettings, *,
                 cost: Callable[[str, Completion], float] | None = None,
                 answerer: Callable[[str], tuple[str, str]] | None = None,
                 on_step: Callable[[dict], None] | None = None,
                 check_stop: Callable[[], None] | None = None):
        self.game = game
        self.settings = settings
        self._make_agent = agents
        self._answerer = answerer or (lambda player: (settings.keys.model, FOCAL))
        self._cost = cost or (lambda player, completion: 0.0)
        self._on_step = on_step
        self._check_stop = check_stop or (lambda: None)
        self.agents: dict[str, Agent] = {}
        self.observations: dict[str, Observation] = {}
        self.last_rewards: dict[str, float] = {}
        self.last_actions: dict[str, str] = {}  # what each player played last step
        self.last_valid: dict[str, bool] = {}  # whether its chosen action was valid
        self.records: list[StepRecord] = []
        self.step_index = 0
        self.terminated = self.truncated = False
        self._notes: dict[str, str] = {}
        self._invalid: dict[str, int] = {}
        self._returns: dict[str, float] = {}
        self._usage: dict[str, Usage] = {}  # per player
        self._calls: dict[str, int] = {}
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def of_cell(cls, config: CellConfig, client: Client, index: int, seed: int, *,
                rival: Client | None = None, capped: bool = True,
                extra: tuple[tuple[str, object], ...] = (),
                price: Callable[[Completion, ModelSpec | None], float] | None = None,
                on_step: Callable[[dict], None] | None = None,
                check_stop: Callable[[], None] | None = None) -> Episode:
        """Episode ``index`` (on ``seed``) of a cell: its game, its agents (``rival``
        drives the other side where the opponent is a model), its settings; ``capped``:
        whether the cell's step cap applies; ``price`` costs a call of a model (None:
        the cell's own)."""
        game = envs.open_game(config.cell.env, config.cell.task, **config.game_options())
        wording = config.agent.balrog_wording()  # None: this project's words
        format_text = wording.answer_format(config.agent.type) if wording else None
        settings = EpisodeSettings(
            keys=CellKeys(run_id=config.run_id, **config.cell.keys()), index=index,
            seed=seed, max_steps=config.max_steps if capped else None,
            invalid_feedback=config.agent.invalid_feedback,
            answer_parsing=config.agent.answer_parsing,
            prompt_wording=wording.label if wording else PROMPT_WORDING, extra=extra)

        def other_side(player: str) -> bool:
            return player not in game.focal

        def agent(player: str, instructions: str) -> Agent:
            if wording is not None:  # BALROG's instructions for this game, from its tree
                instructions = wording.instructions(config.cell.env, config.cell.task,
                                                    mission=game.mission(player))
            return make_agent(config, rival if other_side(player) else client, instructions,
                              player=player, format_text=format_text)

        cost = None
        if price is not None:
            def cost(player: str, completion: Completion) -> float:
                return price(completion, config.opponent_model if other_side(player) else None)

        def answerer(player: str) -> tuple[str, str]:
            if other_side(player) and config.opponent_model is not None:
                return config.opponent_model.name, OPPONENT
            return config.model.name, FOCAL

        return cls(game, agent, settings, cost=cost, answerer=answerer, on_step=on_step,
                   check_stop=check_stop)

    @property
    def done(self) -> bool:
        cap = self.settings.max_steps
        return self.terminated or self.truncated or (cap is not None and self.step_index >= cap)

    def reset(self) -> dict[str, Observation]:
        self.observations = self.game.reset(self.settings.seed)
        players = self.game.players
        self.agents = {p: self._make_agent(p, self.game.instructions(p)) for p in players}
        self._notes = dict.fromkeys(players, "")
        self._invalid = dict.fromkeys(players, 0)
        self._returns = dict.fromkeys(players, 0.0)
        self._usage = dict.fromkeys(players, Usage())
        self._calls = dict.fromkeys(players, 0)
        self.records, self.step_index = [], 0
        self.terminated = self.truncated = False
        return self.observations

    def decide(self, players: tuple[str, ...] | None = None) -> dict[str, Decision]:
        """Each player's agent answers the current observation (at once when several)."""
        players = players or self.game.players
        if len(players) == 1:
            return {p: self._ask(p) for p in players}
        if cooperative():  # on the event loop: a thread pool's wait would stop it
            answers = all_at_once([functools.partial(self._ask, p) for p in players])
            return dict(zip(players, answers, strict=True))
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=len(self.game.players),
                                            thread_name_prefix="player")
        futures = {p: self._pool.submit(self._ask, p) for p in players}
        return {p: future.result() for p, future in futures.items()}

    def _ask(self, player: str) -> Decision:
        game, agent = self.game, self.agents[player]
        image = encode_png(game.frame(player)) if agent.spec.max_image_history else None
        seed = derive_seed(self.settings.seed, self.step_index, game.call_key(player))
        # The scripted baseline asks the game's expert; no model sees it. The game does
        # not move while its players decide, so asking late is asking now.
        actions = LazyActions(lambda: game.actions(player))
        return agent.act(self.observations[player], actions, seed,
                         self._notes[player], oracle=lambda: game.oracle_action(player),
                         image=image)

    def advance(self, decisions: dict[str, Decision],
                actions: dict[str, str] | None = None) -> list[StepRecord]:
        """Play one step: each player's decision (or, from an interactive caller, a given
        action) validated, the default played for an invalid one. Returns the step's
        records, one per player that decided."""
        game = self.game
        chosen = {**{p: d.candidate for p, d in decisions.items()}, **(actions or {})}
        played, valid = {}, {}
        for player in game.players:
            candidate = chosen.get(player, game.default_action(player))
            valid[player] = game.is_valid(player, candidate)
            played[player] = candidate if valid[player] else game.default_action(player)
            self.agents[player].record(played[player])
        turn = game.step(played)
        self.terminated, self.truncated = turn.terminated, turn.truncated
        self.last_rewards = {p: turn.rewards.get(p, 0.0) for p in game.players}
        self.last_actions, self.last_valid = played, valid
        records = []
        for player in game.players:
            reward = turn.rewards.get(player, 0.0)
            self._returns[player] += reward
            self._invalid[player] += not valid[player]
            self._notes[player] = ("" if valid[player] or not self.settings.invalid_feedback
                                   else invalid_action_note(game.default_action(player)))
            decision = decisions.get(player)
            if decision is None:
                continue
            completion = decision.completion
            usage = usage_of(completion, self._cost(player, completion))
            self._usage[player] += usage
            self._calls[player] += 1
            answered_by, side = self._answerer(player)
            record = StepRecord(
                keys=self.settings.keys, episode_index=self.settings.index,
                step=self.step_index, agent_id=player, observation=decision.shown,
                completion=completion.text, reasoning=decision.reasoning,
                candidate=recorded_candidate(decision.candidate), action=played[player],
                valid=valid[player], reward=reward, terminated=turn.terminated,
                truncated=turn.truncated, usage=usage,
                latency_s=round(completion.latency_s, 6),
                answer_truncated=completion.truncated, answered_by=answered_by, side=side)
            records.append(record)
            if self._on_step:
                self._on_step(record.to_dict())
        self.records += records
        self.observations = turn.observations
        self.step_index += 1
        return records

    def play(self) -> EpisodeRecord:
        """Reset, then steps until the game ends or the cap: the episode's record."""
        started = time.perf_counter()
        try:
            self.reset()
            while not self.done:
                self._check_stop()
                self.advance(self.decide())
            return self.summary(time.perf_counter() - started)
        finally:
            self.close()

    def summary(self, duration_s: float = 0.0) -> EpisodeRecord:
        """The episode's record, scored on the game's focal players; the calls of a second
        model (the other side) are reported apart."""
        progression = self.game.progression()
        focal = self.game.focal
        facts = dict(self.game.episode_info())
        if len(self.game.players) > 1:
            facts["invalid_by_agent"] = dict(self._invalid)
        rivals = [p for p in self.game.players if p not in focal]
        if rivals:
            usage = sum((self._usage[p] for p in rivals), Usage())
            facts.update(opponent_llm_calls=sum(self._calls[p] for p in rivals),
                         opponent_input_tokens=usage.input_tokens,
                         opponent_output_tokens=usage.output_tokens,
                         opponent_cost_usd=round(usage.cost_usd, 8),
                         opponent_invalid_actions=sum(self._invalid[p] for p in rivals))
        facts.update(dict(self.settings.extra))
        if self.terminated:
            end_reason = "success" if progression >= 1.0 else "terminated"
        else:
            end_reason = "truncated" if self.truncated else "max_steps"
        return EpisodeRecord(
            keys=self.settings.keys, episode_index=self.settings.index, seed=self.settings.seed,
            num_steps=self.step_index, llm_calls=sum(self._calls[p] for p in focal),
            usage=sum((self._usage[p] for p in focal), Usage()),
            end_reason=end_reason, duration_s=round(duration_s, 4),
            episode_return=round(sum(self._returns[p] for p in focal), 6),
            progression=progression, success=progression >= 1.0,
            invalid_actions=sum(self._invalid[p] for p in focal),
            terminated=self.terminated, truncated=self.truncated or not self.terminated,
            answer_parsing=self.settings.answer_parsing,
            prompt_wording=self.settings.prompt_wording, facts=facts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.game.close()
