"""NetHack and MiniHack text against NLE's true state: positions, map, status, score."""

import random
import re

import pytest
from nle import nethack

from balrog_worker.envs.minihack import TASKS, MiniHackGame
from balrog_worker.envs.nethack import NetHackGame, progression_table

LINE = re.compile(r"^- (?P<what>.+): (?:(?P<ns>\d+) steps? (?P<nsdir>north|south))?"
                  r"(?: and )?(?:(?P<ew>\d+) steps? (?P<ewdir>east|west))?$")


def described(text: str) -> list[tuple[str, int, int]]:
    """(description, dx, dy) of each 'what you see' line."""
    section = text.split("What you see around you (nearest of each kind):\n")[1]
    section = section.split("\nCursor:")[0]
    out = []
    for line in section.splitlines():
        if line == "- nothing":
            continue
        match = LINE.match(line)
        assert match, line
        dy = int(match["ns"] or 0) * (1 if match["nsdir"] == "south" else -1)
        dx = int(match["ew"] or 0) * (1 if match["ewdir"] == "east" else -1)
        out.append((match["what"], dx, dy))
    return out


def check(game) -> None:
    obs = game._obs
    x, y = game.position
    text = game._observe().text
    descriptions = obs["screen_descriptions"]
    decode = lambda cell: bytes(cell).decode("latin-1").rstrip("\x00").strip()  # noqa: E731
    # The agent really is where blstats says: the map shows an @ (or its steed) there.
    assert chr(obs["tty_chars"][y + 1, x]) in "@" or obs["glyphs"][y, x] != 0
    seen = described(text)
    for what, dx, dy in seen:
        assert decode(descriptions[y + dy, x + dx]) == what
        # Nothing of the same kind is strictly nearer (in moves).
        distance = max(abs(dx), abs(dy))
        for row in range(descriptions.shape[0]):
            for col in range(descriptions.shape[1]):
                if (col, row) != (x, y) and decode(descriptions[row, col]) == what:
                    assert max(abs(col - x), abs(row - y)) >= distance
    # Every kind on the map (but the agent's own cell) is mentioned once.
    kinds = {decode(descriptions[r, c]) for r in range(descriptions.shape[0])
             for c in range(descriptions.shape[1]) if (c, r) != (x, y)} - {""}
    assert sorted(kinds) == sorted(what for what, _, _ in seen)
    # The message and status come from the true state.
    message = bytes(obs["message"]).decode("latin-1").rstrip("\x00").strip()
    assert text.startswith(f"Message: {message or '(none)'}\n")
    stats = obs["blstats"]
    assert f"HP {stats[nethack.NLE_BL_HP]}/{stats[nethack.NLE_BL_HPMAX]}" in game._observe().context


@pytest.mark.parametrize("task", list(TASKS))
def test_minihack_text_matches_the_true_state(task):
    game = MiniHackGame(task)
    rng = random.Random(task)
    for seed in range(3):
        game.reset(seed)
        for _ in range(15):
            check(game)
            outcome = game.step(rng.choice(list(game.actions)))
            if outcome.terminated or outcome.truncated:
                break
    assert 0.0 <= game.progression() <= 1.0


def test_nethack_text_status_and_progression_follow_blstats():
    game = NetHackGame("challenge")
    rng = random.Random(1)
    moves = ["north", "south", "east", "west", "northeast", "southwest", "esc", "more",
             "search", "far east", "far west", "down"]
    game.reset(11)
    for _ in range(60):
        check(game)
        outcome = game.step(rng.choice(moves))
        if outcome.terminated:
            break
    stats = game._obs["blstats"]
    info = game.episode_info()
    assert info["depth"] >= int(stats[nethack.NLE_BL_DEPTH]) >= 1
    assert info["experience_level"] >= 1 and info["turn"] == int(stats[nethack.NLE_BL_TIME])
    table = progression_table()
    expected = max(table[f"Dlvl:{info['depth']}"], table[f"Xp:{info['experience_level']}"])
    assert game.progression() == expected


def test_nethack_progression_takes_the_best_of_depth_and_level():
    game = NetHackGame("challenge")
    game.reset(0)
    game._max_depth, game._max_level = 5, 10
    table = progression_table()
    assert game.progression() == max(table["Dlvl:5"], table["Xp:10"]) == table["Xp:10"]
    assert table["Dlvl:5"] == pytest.approx(0.0265, abs=1e-3)


def test_nethack_menus_can_be_answered_with_letters_and_digits():
    game = NetHackGame("challenge")
    game.reset(2)
    # BALROG's NetHack actions: named commands, every letter and digit as a key.
    for key in ["a", "f", "Z", "0", "9", "seegold", "seespells", "turnundead", "esc", "more"]:
        assert game.is_valid(key)
    for not_balrogs in ["$", "+", "quit", "save", "options", "00"]:
        assert not game.is_valid(not_balrogs)
    outcome = game.step("eat")
    assert "What do you want to eat?" in outcome.observation.text
    letter = re.search(r"\[([a-zA-Z])", outcome.observation.text)
    assert letter, outcome.observation.text[:300]
    game.step(letter.group(1))  # a letter answers the prompt


def test_same_seed_same_game_and_a_different_seed_differs():
    game = NetHackGame("challenge")
    first = game.reset(5).text
    game.step("far east")
    assert game.reset(5).text == first
    assert len({NetHackGame("challenge").reset(s).text for s in (6, 7, 8)}) > 1


def test_an_invalid_answer_plays_the_default_action_and_is_counted(tmp_path):
    from balrog_worker.cells import Cell
    from balrog_worker.clients.base import Client, Completion
    from balrog_worker.config import AgentSpec, CellConfig, ModelSpec
    from balrog_worker.evaluator import run_cell
    from balrog_worker.store import read_jsonl

    class Babbler(Client):
        def complete(self, request):
            return Completion(text="I think I will dance")

    config = CellConfig(cell=Cell("babbler", "naive", "minihack", "mazewalk_9x9"),
                        model=ModelSpec("babbler", "random"), agent=AgentSpec("naive", "naive"),
                        episodes=1, max_steps=3)
    run_cell(config, tmp_path, client=Babbler())
    steps, _ = read_jsonl(tmp_path / "steps.jsonl")
    episode = read_jsonl(tmp_path / "episodes.jsonl")[0][0]
    assert [s["action"] for s in steps] == ["north"] * 3
    assert not any(s["valid"] for s in steps) and episode["invalid_actions"] == 3
    # BALROG's layout: the heading, the short-term context, then the text the note opens.
    heading = steps[1]["observation"].partition("\nInventory:")[0]
    assert heading.startswith("Current Observation:\nStatus: Dungeon level 1")
    assert ("\n\n\nYour previous output did not contain a valid action. Defaulted to action: "
            "north\n\nObservation:\nMessage: ") in steps[1]["observation"]


def test_nethack_plays_with_balrogs_settings():
    """BALROG's nle_kwargs: a random role, 100,000 steps, 150 steps without progress."""
    env = NetHackGame("challenge").env.unwrapped
    assert (env.character, env._max_episode_steps, env.no_progress_timeout) == (
        "@", 100_000, 150)
    roles = set()
    for seed in range(6):
        game = NetHackGame("challenge")
        roles.add(re.search(r"You are an? [\w ]*?(\w+)\.", game.reset(seed).text)[1])
    assert len(roles) > 1  # "@": the role is drawn per game


def test_minihack_plays_with_balrogs_settings_and_actions():
    """BALROG's minihack_kwargs: no autopickup, a -0.01 step penalty, 100 steps; and only
    the actions of BALROG's MiniHack list."""
    game = MiniHackGame("quest_easy")
    env = game.env.unwrapped
    assert "!autopickup" in env.nethack.options and env.character == "@"
    assert (env.penalty_step, env.penalty_mode) == (-0.01, "constant")
    from balrog_worker.envs.nle_text import MINIHACK_ACTIONS

    assert set(game.actions) <= set(MINIHACK_ACTIONS) and "more" in game.actions
    assert "inventory" not in game.actions and "a" not in game.actions
    walk = MiniHackGame("mazewalk_9x9")
    walk.reset(0)
    steps, outcome = 0, None
    while outcome is None or not (outcome.terminated or outcome.truncated):
        outcome, steps = walk.step(("north", "south")[steps % 2]), steps + 1
    assert steps == 100 and outcome.truncated


def test_more_prompts_are_pressed_and_their_messages_joined():
    """BALROG's skip_more: within one step, --More-- is pressed until the message is
    complete; the observation holds the whole message, and the rewards add up."""
    game = NetHackGame("challenge")
    joined = None
    for seed in range(40):
        game.reset(seed)
        rng = random.Random(seed)
        for _ in range(60):
            outcome = game.step(rng.choice(["far east", "far west", "far north", "far south",
                                            "search", "kick", "j"]))
            message = outcome.observation.text.split("\n")[0]
            top = bytes(game._obs["tty_chars"][0]).decode("latin-1")
            assert "--More--" not in top or outcome.terminated or outcome.truncated
            if "\n" in game._message:
                joined = game._message
                break
            if outcome.terminated:
                break
        if joined:
            break
    assert joined and message.startswith("Message: ")
    assert joined.strip().split("\n")[0] in outcome.observation.text
