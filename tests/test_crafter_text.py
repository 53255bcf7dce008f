"""The Crafter text observation against crafter's own semantic map, over many random states.

The truth here is crafter's ``SemanticView`` (the map of material and creature ids that
crafter hands out as ``info['semantic']``), not the describer's own lookup.
"""

import random
import re

import pytest
from crafter import constants

from balrog_worker.envs.crafter import CrafterGame

ACTION_NAMES = [
    "Noop", "Move West", "Move East", "Move North", "Move South", "Do", "Sleep", "Place Stone",
    "Place Table", "Place Furnace", "Place Plant", "Make Wood Pickaxe", "Make Stone Pickaxe",
    "Make Iron Pickaxe", "Make Wood Sword", "Make Stone Sword", "Make Iron Sword",
]
LINE = re.compile(
    r"^- (?P<kind>[a-z]+) (?P<n>\d+) steps? to your "
    r"(?P<dirs>(?:north|south)(?:-(?:west|east))?|west|east)$"
)
FACE = re.compile(r"^You face (?P<kind>[a-z]+) at your front\.$")
HALF_WIDTH, HALF_HEIGHT = 4, 3  # BALROG's 9 x 7 window around the player


@pytest.fixture(scope="module")
def game():
    return CrafterGame("default")


def parse_view(text: str) -> tuple[list[tuple[str, int, str]], str]:
    """([(kind, distance, compass words)...], kind in front) from BALROG's text."""
    status, _, rest = text.rpartition("You see")
    assert status in ("", "You are sleeping, and will not be able take actions until energy "
                          "is full.\n\n\n\n", "You died.\n\n\n\n"), status
    seen_part, _, face_line = ("You see" + rest).rpartition("\n\n")
    face = FACE.match(face_line)
    assert face, f"unparseable facing line {face_line!r}"
    if seen_part == "You see nothing away from you.":
        return [], face["kind"]
    lines = seen_part.splitlines()
    assert lines[0] == "You see:"
    seen = []
    for line in lines[1:]:
        match = LINE.match(line)
        assert match, f"unparseable line {line!r}"
        seen.append((match["kind"], int(match["n"]), match["dirs"]))
    return seen, face["kind"]


def true_kind(env, x: int, y: int) -> str | None:
    """The kind at (x, y) by crafter's semantic map, named as BALROG names it."""
    if not (0 <= x < env._world.area[0] and 0 <= y < env._world.area[1]):
        return None
    names = dict(env._world._mat_names)
    names.update({index: cls.__name__.lower() for cls, index in env._sem_view._obj_ids.items()})
    return str(names[int(env._sem_view()[x, y])])


def true_view(env) -> dict[tuple[int, int], str]:
    px, py = (int(v) for v in env._player.pos)
    view = {}
    for dx in range(-HALF_WIDTH, HALF_WIDTH + 1):
        for dy in range(-HALF_HEIGHT, HALF_HEIGHT + 1):
            kind = true_kind(env, px + dx, py + dy)
            if kind is not None and (dx, dy) != (0, 0):
                view[dx, dy] = kind
    return view


def compass(dx: int, dy: int) -> str:
    words = (["north"] if dy < 0 else ["south"] if dy > 0 else []) + (
        ["west"] if dx < 0 else ["east"] if dx > 0 else [])
    return "-".join(words)


def check_against_world(game) -> set[str]:
    """Every listed kind is in the window at that distance and direction, none nearer;
    every kind in the window is listed; the cell faced is the one in front."""
    env = game.env
    text = game._observe().text
    seen, front = parse_view(text)
    view = true_view(env)
    kinds = [kind for kind, _, _ in seen]
    assert len(kinds) == len(set(kinds)), f"a kind is listed twice:\n{text}"
    for kind, distance, words in seen:
        cells = [p for p, k in view.items() if k == kind]
        assert min(abs(x) + abs(y) for x, y in cells) == distance, f"{kind}:\n{text}"
        assert any(abs(x) + abs(y) == distance and compass(x, y) == words for x, y in cells), (
            f"no {kind} {distance} steps {words}:\n{text}")
    assert set(kinds) == set(view.values()), f"visible kinds missing:\n{text}"
    ux, uy = (int(v) for v in env._player.facing)
    px, py = (int(v) for v in env._player.pos)
    assert front == true_kind(env, px + ux, py + uy)
    return set(kinds)


def parse_context(context: str) -> dict[str, int]:
    status, _, held = context.partition("\n\n")
    lines = status.splitlines()
    assert lines[0] == "Your status:"
    inventory = {}
    for line, name in zip(lines[1:], ("health", "food", "drink", "energy"), strict=True):
        match = re.fullmatch(rf"- {name}: (\d)/9", line)
        assert match, line
        inventory[name] = int(match[1])
    if held != "You have nothing in your inventory.":
        lines = held.splitlines()
        assert lines[0] == "Your inventory:"
        for line in lines[1:]:
            name, count = re.fullmatch(r"- ([a-z_]+): (\d+)", line).groups()
            inventory[name] = int(count)
    return inventory


def test_view_size_is_crafters():
    game = CrafterGame("default")
    game.reset(0)
    assert tuple(game.env._local_view._grid) == (2 * HALF_WIDTH + 1, 2 * HALF_HEIGHT + 1)
    assert tuple(game.env._area) == (64, 64)


def test_text_and_status_match_the_true_world_on_random_walks(game):
    rng = random.Random(0)
    # Mostly moves and Do, so the walks get somewhere and change the world.
    weights = [1 if name.startswith(("Place", "Make", "Sleep", "Noop")) else 6
               for name in ACTION_NAMES]
    kinds_seen: set[str] = set()
    items_seen: set[str] = set()
    for seed in range(4):
        game.reset(seed)
        for _ in range(120):
            kinds_seen |= check_against_world(game)
            inventory = parse_context(game._observe().context)
            player = game.env._player
            assert inventory == {k: v for k, v in player.inventory.items() if v or k in
                                 ("health", "food", "drink", "energy")}
            assert game._observe().text.startswith("You are sleeping") == player.sleeping
            items_seen |= set(inventory)
            progression = game.progression()
            assert 0 <= progression <= 1
            unlocked = {name for name, count in player.achievements.items() if count > 0}
            assert progression == len(unlocked) / 22
            assert game.episode_info() == {"achievements": sorted(unlocked)}
            outcome = game.step(rng.choices(ACTION_NAMES, weights)[0])
            if outcome.terminated:
                break
    # The walks met plenty of the world: materials and creatures, and picked things up.
    assert {"grass", "tree", "cow"} <= kinds_seen and len(kinds_seen) >= 6, kinds_seen
    assert "wood" in items_seen or "sapling" in items_seen, items_seen


def test_walking_by_the_text_to_a_tree_collects_wood(game):
    """Directions mean what they say: walk towards the 'tree' line, face it, and Do."""
    game.reset(0)
    moves = {"north": "Move North", "south": "Move South", "west": "Move West",
             "east": "Move East"}
    for _ in range(40):
        seen, _ = parse_view(game._observe().text)
        distance, words = next((n, w) for kind, n, w in seen if kind == "tree")
        if distance == 1:
            break
        game.step(moves[words.split("-")[0]])
    game.step(moves[words])  # a tree cannot be entered: this only turns the player
    assert parse_view(game._observe().text)[1] == "tree"
    assert game.progression() == 0
    outcome = game.step("Do")
    assert game.env._player.inventory["wood"] == 1
    assert game.episode_info() == {"achievements": ["collect_wood"]}
    assert game.progression() == 1 / 22
    assert outcome.reward == pytest.approx(1.0)  # crafter's reward for a new achievement
    assert "Your inventory:\n- wood: 1" in outcome.observation.context


def test_reset_is_reproducible_per_seed(game):
    first = game.reset(7)
    for action in ("Move West", "Do", "Move North"):
        game.step(action)
    again = game.reset(7)
    assert (again.text, again.context) == (first.text, first.context)
    # The same actions replay to the same states.
    replays = []
    for _ in range(2):
        game.reset(3)
        replays.append([game.step(a).observation.text for a in ACTION_NAMES[:6] * 3])
    assert replays[0] == replays[1]
    texts, worlds = set(), set()
    for seed in range(4):
        texts.add(game.reset(seed).text)
        worlds.add(game.env._world._mat_map.tobytes())
    assert len(worlds) == 4 and len(texts) > 1


def test_death_terminates_the_episode(game):
    game.reset(1)
    assert not game.step("Noop").terminated
    game.env._player.health = 0
    assert game.step("Noop").terminated


def test_actions_are_balrogs_in_crafters_order(game):
    assert list(game.actions) == ACTION_NAMES
    assert all(game.actions[name] for name in ACTION_NAMES)
    from balrog_worker.envs.crafter import ACTION_INDEX

    assert [constants.actions[ACTION_INDEX[name]] for name in ACTION_NAMES] == constants.actions
    assert game.is_valid("Noop") and not game.is_valid("fly")
    assert game.default_action == "Noop" and game.family == "crafter"
    instructions = game.instructions()
    for name, description in game.actions.items():
        assert f"{name}: {description}" in instructions
    # BALROG's information only: the 22 achievements and the goal, no strategy advice.
    assert "22. Collect Diamond" in instructions and "wall yourself" not in instructions
    with pytest.raises(ValueError):
        CrafterGame("hard")


def test_frame_is_an_rgb_image(game):
    game.reset(0)
    frame = game.frame()
    assert frame.dtype.name == "uint8" and frame.ndim == 3 and frame.shape[2] == 3
