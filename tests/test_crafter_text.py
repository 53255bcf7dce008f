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
    r"^- (?P<kind>[a-z ]+?) (?P<n1>\d+) steps? (?P<d1>north|south|east|west)"
    r"(?: and (?P<n2>\d+) steps? (?P<d2>east|west))?$"
)
FACE = re.compile(r"^You face (?P<dir>north|south|east|west); in front of you is (?P<kind>.+)\.$")
UNIT = {"north": (0, -1), "south": (0, 1), "west": (-1, 0), "east": (1, 0)}
HALF_WIDTH, HALF_HEIGHT = 4, 3  # crafter's 9 x 7 world view around the player


@pytest.fixture(scope="module")
def game():
    return CrafterGame("default")


def parse_view(text: str) -> tuple[list[tuple[str, int, int]], tuple[str, str]]:
    """([(kind, dx, dy)...], (facing direction, kind in front)) from the observation text."""
    lines = text.splitlines()
    assert lines[0] == "You see (the closest of each kind):"
    seen = []
    for line in lines[1:-1]:
        match = LINE.match(line)
        assert match, f"unparseable line {line!r}"
        dx = dy = 0
        for count, direction in ((match["n1"], match["d1"]), (match["n2"], match["d2"])):
            if direction:
                ux, uy = UNIT[direction]
                dx, dy = dx + int(count) * ux, dy + int(count) * uy
        seen.append((match["kind"], dx, dy))
    face = FACE.match(lines[-1])
    assert face, f"unparseable facing line {lines[-1]!r}"
    return seen, (face["dir"], face["kind"])


def true_kind(env, x: int, y: int) -> str | None:
    """The kind at (x, y) by crafter's semantic map; plants split by ripeness."""
    if not (0 <= x < env._world.area[0] and 0 <= y < env._world.area[1]):
        return None
    names = dict(env._world._mat_names)
    names.update({index: cls.__name__.lower() for cls, index in env._sem_view._obj_ids.items()})
    name = names[int(env._sem_view()[x, y])]
    if name == "plant" and env._world[(x, y)][1].ripe:
        return "ripe plant"
    return name


def true_view(env) -> dict[tuple[int, int], str]:
    px, py = (int(v) for v in env._player.pos)
    view = {}
    for dx in range(-HALF_WIDTH, HALF_WIDTH + 1):
        for dy in range(-HALF_HEIGHT, HALF_HEIGHT + 1):
            kind = true_kind(env, px + dx, py + dy)
            if kind is not None and (dx, dy) != (0, 0):
                view[dx, dy] = kind
    return view


def check_against_world(game) -> set[str]:
    env = game.env
    text = game._observe().text
    seen, (facing, front) = parse_view(text)
    view = true_view(env)
    kinds = [kind for kind, _, _ in seen]
    assert len(kinds) == len(set(kinds)), f"a kind is listed twice:\n{text}"
    for kind, dx, dy in seen:
        assert abs(dx) <= HALF_WIDTH and abs(dy) <= HALF_HEIGHT, f"{kind} out of view:\n{text}"
        assert view.get((dx, dy)) == kind, f"{kind} at {dx},{dy} is {view.get((dx, dy))}:\n{text}"
        distance = abs(dx) + abs(dy)
        nearer = [p for p, k in view.items() if k == kind and abs(p[0]) + abs(p[1]) < distance]
        assert not nearer, f"a nearer {kind} at {nearer[0]}:\n{text}"
    assert set(kinds) == set(view.values()), f"visible kinds missing:\n{text}"
    ux, uy = (int(v) for v in env._player.facing)
    assert UNIT[facing] == (ux, uy)
    px, py = (int(v) for v in env._player.pos)
    assert front == (true_kind(env, px + ux, py + uy) or "the edge of the world")
    return set(kinds)


def parse_context(context: str) -> tuple[dict[str, int], bool]:
    lines = context.splitlines()
    status = re.fullmatch(
        r"Status: health (\d)/9, food (\d)/9, drink (\d)/9, energy (\d)/9\.", lines[0])
    assert status, lines[0]
    inventory = dict(zip(("health", "food", "drink", "energy"), map(int, status.groups()),
                         strict=True))
    listed = re.fullmatch(r"Inventory: (.+)\.", lines[1])[1]
    if listed != "empty":
        for entry in listed.split(", "):
            name, count = entry.rsplit(" ", 1)
            inventory[name.replace(" ", "_")] = int(count)
    assert lines[2:] in ([], ["You are asleep."])
    return inventory, lines[2:] == ["You are asleep."]


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
            inventory, asleep = parse_context(game._observe().context)
            player = game.env._player
            assert inventory == {k: v for k, v in player.inventory.items() if v or k in
                                 ("health", "food", "drink", "energy")}
            assert asleep == player.sleeping
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
    """Directions mean what they say: follow the 'tree' line, face it, and Do."""
    game.reset(0)
    for _ in range(40):
        seen, _ = parse_view(game._observe().text)
        tree = next((dx, dy) for kind, dx, dy in seen if kind == "tree")
        if abs(tree[0]) + abs(tree[1]) == 1:
            break
        if tree[1]:
            game.step("Move North" if tree[1] < 0 else "Move South")
        else:
            game.step("Move West" if tree[0] < 0 else "Move East")
    direction = {(0, -1): "North", (0, 1): "South", (-1, 0): "West", (1, 0): "East"}[tree]
    game.step(f"Move {direction}")  # a tree cannot be entered: this only turns the player
    assert parse_view(game._observe().text)[1] == (direction.lower(), "tree")
    assert game.progression() == 0
    outcome = game.step("Do")
    assert game.env._player.inventory["wood"] == 1
    assert game.episode_info()["achievements"] == ["collect_wood"]
    assert game.progression() == 1 / 22
    assert outcome.reward == pytest.approx(1.0)  # crafter's reward for a new achievement
    assert "wood 1" in outcome.observation.context


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
        assert f"- {name}: {description}" in instructions
    assert "Place Table: build a table" in instructions and "uses 2 wood" in instructions
    with pytest.raises(ValueError):
        CrafterGame("hard")


def test_frame_is_an_rgb_image(game):
    game.reset(0)
    frame = game.frame()
    assert frame.dtype.name == "uint8" and frame.ndim == 3 and frame.shape[2] == 3
