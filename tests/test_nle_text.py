"""NetHack and MiniHack on BALROG's stack beyond the golden traces: the text against NLE's
true state, BALROG's settings, actions, --More-- handling, vision text, progression and
seeding (Boxoban's level draws included, in threads and in another process)."""

import random
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from nle import nethack

from balrog_worker.envs import bundled
from balrog_worker.envs.minihack import TASKS, MiniHackGame
from balrog_worker.envs.nethack import NetHackGame, progression_table
from balrog_worker.envs.nle_text import MINIHACK_ACTIONS


def sections(text: str) -> dict[str, str]:
    """BALROG's sections: 'name:' on a line, the text, a blank line."""
    found = dict(re.findall(r"(?ms)^(message|language observation|cursor|map|statistics|"
                            r"inventory):\n(.*?)\n(?=\n(?:message|language observation|"
                            r"cursor|map|statistics|inventory):\n|\Z)", text))
    return found


def check_against_state(game) -> None:
    obs = game._obs
    observation = game._observe()
    parts = sections(observation.text)
    assert list(parts) == ["message", "language observation", "cursor", "map"]
    # The map is the terminal without its message row; the cursor's position is the
    # terminal's cursor.
    rows = [bytes(row).decode("latin-1") for row in obs["tty_chars"]]
    assert parts["map"] == "".join(row + "\n" for row in rows[1:])
    row, column = (int(v) for v in obs["tty_cursor"])
    assert parts["cursor"].endswith(f"\n(x={column}, y={row})")
    # The map shows the player where blstats says (a row below: the message row).
    x, y = game.position
    assert rows[y + 1][x] == "@" or obs["glyphs"][y, x] != 0
    assert observation.context.startswith("inventory:\n")
    letters = [chr(c) for c in obs["inv_letters"] if c]
    for letter in letters:
        assert f"\n{letter}: " in "\n" + observation.context


@pytest.mark.parametrize("task", list(TASKS))
def test_minihack_text_follows_the_true_state(task):
    game = MiniHackGame(task)
    rng = random.Random(task)
    try:
        for seed in range(2):
            game.reset(seed)
            for _ in range(12):
                check_against_state(game)
                outcome = game.step(rng.choice(list(game.actions)))
                if outcome.terminated or outcome.truncated:
                    break
            assert game.progression() in (0.0, 1.0)
    finally:
        game.close()


def test_nethack_progression_follows_blstats():
    game = NetHackGame("challenge")
    rng = random.Random(1)
    moves = ["north", "south", "east", "west", "northeast", "southwest", "esc", "more",
             "search", "far east", "far west", "down"]
    game.reset(11)
    assert game.progression() == 0.0  # nothing reached before the first step (BALROG's)
    for _ in range(60):
        check_against_state(game)
        if game.step(rng.choice(moves)).terminated:
            break
    stats = game._obs["blstats"]
    info = game.episode_info()
    assert info["depth"] >= int(stats[nethack.NLE_BL_DEPTH]) >= 1
    assert info["experience_level"] >= 1 and info["turn"] == int(stats[nethack.NLE_BL_TIME])
    table = progression_table()
    assert game.progression() == max(table[f"Dlvl:{info['depth']}"],
                                     table[f"Xp:{info['experience_level']}"])


def test_nethack_progression_is_the_best_of_what_was_reached():
    game = NetHackGame("challenge")
    game._depths, game._levels = {5, 1}, {10}
    table = progression_table()
    assert game.progression() == max(table["Dlvl:5"], table["Xp:10"]) == table["Xp:10"]
    assert table["Dlvl:5"] == pytest.approx(0.0265, abs=1e-3)
    game.reset(0)
    game.step("search")  # BALROG counts what the first step shows: depth 1, level 1
    assert (game._depths, game._levels) == ({1}, {1}) and game.progression() == 0.0


def test_nethack_actions_are_balrogs_and_menus_take_letters():
    game = NetHackGame("challenge")
    game.reset(2)
    # BALROG's list: the first names of NLE's useful actions, every letter and digit.
    for key in ["a", "f", "Z", "0", "9", "seegold", "seespells", "turnundead", "esc", "more",
                "space"]:
        assert game.is_valid(key), key
    # BALROG's prompt lists "minus", but its action list does not (NLE's "useful" actions
    # lack it); "00".."99" are listed but cannot be played.
    for not_balrogs in ["$", "+", "quit", "save", "options", "zero", "minus", "00", "k "]:
        assert not game.is_valid(not_balrogs), not_balrogs
    assert len(game.actions) == 86 + 62
    outcome = game.step("eat")
    assert "What do you want to eat?" in outcome.observation.text
    letter = re.search(r"\[([a-zA-Z])", outcome.observation.text)
    assert letter, outcome.observation.text[:300]
    assert "What do you want to eat?" not in game.step(letter.group(1)).observation.text


def test_nethack_plays_with_balrogs_settings():
    """BALROG's nle_kwargs: a random role, 100,000 steps, 150 steps without progress."""
    game = NetHackGame("challenge")
    env = game.nle
    assert (env.character, env._max_episode_steps, env.no_progress_timeout) == (
        "@", 100_000, 150)
    roles = {re.search(r"You are an? [\w ]*?(\w+)\.", game.reset(seed).text)[1]
             for seed in range(6)}
    assert len(roles) > 1  # "@": the role is drawn per game
    # No progress for 150 steps aborts the episode: a truncation, not an end.
    # (NLE counts from the first step, which sets the turn it compares with.)
    game.reset(3)
    outcomes = [game.step("esc") for _ in range(151)]
    assert outcomes[-1].truncated and not outcomes[-1].terminated
    assert not any(o.truncated or o.terminated for o in outcomes[:-1])
    assert game.episode_info()["death_reason"] == "aborted"


def test_minihack_plays_with_balrogs_settings_and_actions():
    """BALROG's minihack_kwargs: no autopickup, a -0.01 step penalty, 100 steps; and only
    the actions of BALROG's MiniHack list."""
    game = MiniHackGame("quest_easy")
    env = game.nle
    assert "!autopickup" in env.nethack.options and env.character == "@"
    assert (env.penalty_step, env.penalty_mode) == (-0.01, "constant")
    assert set(game.actions) <= set(MINIHACK_ACTIONS) and "more" in game.actions
    assert "inventory" not in game.actions and "a" not in game.actions
    assert "stairs down" in game.instructions()
    walk = MiniHackGame("mazewalk_9x9")
    walk.reset(0)
    steps, outcome = 0, None
    while outcome is None or not (outcome.terminated or outcome.truncated):
        outcome, steps = walk.step(("north", "south")[steps % 2]), steps + 1
    assert steps == 100 and outcome.truncated and walk.progression() == 0.0


def test_more_prompts_are_pressed_and_their_messages_joined():
    """BALROG's skip_more: within one step, --More-- is pressed until the message is
    complete; the message section holds the joined messages."""
    game = NetHackGame("challenge")
    joined = None
    for seed in range(40):
        game.reset(seed)
        rng = random.Random(seed)
        for _ in range(60):
            outcome = game.step(rng.choice(["far east", "far west", "far north", "far south",
                                            "search", "kick", "j"]))
            top = bytes(game._obs["tty_chars"][0]).decode("latin-1")
            assert "--More--" not in top or outcome.terminated or outcome.truncated
            if "\n" in game._message:
                joined = game._message
                break
            if outcome.terminated:
                break
        if joined:
            break
    assert joined and "--More--" not in joined
    assert sections(outcome.observation.text)["message"] == joined


def test_vision_agents_get_balrogs_language_text():
    """With images, BALROG shows no map and no cursor position, and adds the statistics."""
    text_game, vision_game = NetHackGame("challenge"), NetHackGame("challenge", vision=True)
    text, vision = text_game.reset(4), vision_game.reset(4)
    assert list(sections(vision.text)) == ["message", "language observation", "cursor"]
    assert list(sections(vision.context)) == ["statistics", "inventory"]
    for name in ("message", "language observation"):
        assert sections(vision.text)[name] == sections(text.text)[name]
    assert sections(text.text)["cursor"].startswith(sections(vision.text)["cursor"] + "\n(x=")
    stats = vision_game._obs["blstats"]
    assert f"Depth: {stats[nethack.NLE_BL_DEPTH]}" in vision.context
    assert vision.context.endswith(text.context)


def test_same_seed_same_game_and_other_seeds_differ():
    game = NetHackGame("challenge")
    first = game.reset(5).text
    game.step("far east")
    assert game.reset(5).text == first
    assert len({game.reset(s).text for s in (6, 7, 8)}) == 3


def first_map(game: MiniHackGame, seed: int) -> str:
    return sections(game.reset(seed).text)["map"]


def test_boxoban_levels_are_drawn_by_seed_from_the_shipped_levels():
    hard, medium = bundled.boxoban_levels("hard"), bundled.boxoban_levels("medium")
    assert (len(hard), len(medium)) == (3332, 450_000)
    game = MiniHackGame("boxoban_hard")
    for seed in (3, 1234, 987_654_321):
        level = random.Random(seed).choice(hard).split("\n")[:-1]
        shown = [row.strip() for row in first_map(game, seed).splitlines() if "#" in row]
        # The level's walls are the map's walls, its boxes the map's boulders.
        for mark, drawn in (("#", "#"), ("$", "`")):
            assert [[c == mark for c in row] for row in level] == [
                [c == drawn for c in row] for row in shown], seed
    assert first_map(game, 3) != first_map(game, 4)


def test_boxoban_episodes_in_threads_draw_their_own_levels():
    seeds = list(range(20, 28))
    alone = {seed: first_map(MiniHackGame("boxoban_medium"), seed) for seed in seeds}

    def play(seed):
        return seed, first_map(MiniHackGame("boxoban_medium"), seed)

    with ThreadPoolExecutor(4) as pool:
        assert dict(pool.map(play, seeds)) == alone


PLAY = """
import sys
from balrog_worker import envs
game = envs.make("minihack", "boxoban_medium")
print(game.reset(int(sys.argv[1])).text)
"""


def test_another_process_draws_the_same_boxoban_level():
    here = MiniHackGame("boxoban_medium").reset(77).text
    there = subprocess.run([sys.executable, "-c", PLAY, "77"], capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": "5"}).stdout
    assert there == here + "\n"


def test_a_damaged_level_file_is_refused():
    with pytest.raises(ValueError, match="not 10x10"):
        bundled.parse_level_file("; 0\n#####\n#@$.#\n\n")
    assert bundled.parse_level_file("; 0\n" + "##########\n" * 10 + "\n; 1\n#") == [
        "##########\n" * 10]  # an unclosed block is not a level (minihack drops it too)
    assert np.all(np.array([len(bundled.boxoban_levels("hard")[i]) for i in (0, -1)])
                  == bundled.RECORD_SIZE)


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
    assert steps[1]["observation"].startswith("Current Observation:\ninventory:\na: ")
    assert ("\n\n\nYour previous output did not contain a valid action. Defaulted to action: "
            "north\n\nObservation:\nmessage:\n") in steps[1]["observation"]


@pytest.mark.parametrize("task", [("nethack", "challenge"), ("minihack", "boxoban_hard")],
                         ids="/".join)
def test_episodes_in_threads_play_as_they_do_alone(task, tmp_path):
    """Concurrent episodes build their games one at a time (two NLE constructions at once
    deadlocked) and each plays exactly what it plays alone."""
    from balrog_worker.cells import Cell
    from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
    from balrog_worker.evaluator import run_cell
    from balrog_worker.store import read_jsonl

    def play(parallel: int) -> list[tuple]:
        config = CellConfig(cell=Cell("random", "naive", *task), model=BUILTIN_MODELS["random"],
                            agent=AgentSpec("naive", "naive"), episodes=4, max_steps=15,
                            parallel_episodes=parallel)
        out = tmp_path / str(parallel)
        assert run_cell(config, out).failed == 0
        steps, _ = read_jsonl(out / "steps.jsonl")
        return sorted((s["episode_index"], s["step"], s["action"], s["observation"])
                      for s in steps)

    assert play(4) == play(1)


def test_a_fresh_process_builds_concurrent_games_without_deadlock(tmp_path):
    """The deadlock showed in a fresh process (an import numpy makes from inside NLE's
    constructor, in two threads at once): four episodes at once, in a new process."""
    from tests.conftest import run_cli

    run_cli("run", "--env", "minihack", "--task", "mazewalk_9x9", "--model", "random",
            "--agent", "naive", "--episodes", "4", "--max-steps", "3", "--parallel", "4",
            "--out", str(tmp_path / "cell"), timeout=90)
