"""The BabaIsAI rules engine on hand-built boards with known outcomes: rules formed,
broken and chained by pushes, STOP and pushing, winning, and losing YOU."""

from balrog_worker.envs.babaisai.engine import Board, Thing


def rule(board: Board, x: int, y: int, subject: str, complement: str) -> None:
    """Blocks "subject is complement" from (x, y) rightwards."""
    board.put(x, y, Thing("rule_object", word=subject))
    board.put(x + 1, y, Thing("rule_is", word="is"))
    kind = "rule_object" if complement in ("baba", "fball", "fkey", "fdoor", "fwall") else (
        "rule_property")
    board.put(x + 2, y, Thing(kind, word=complement))


def board_with(*things: tuple[int, int, Thing], rules=()) -> Board:
    board = Board(9, 9)
    board.add_boundary()
    for subject, complement, x, y in rules:
        rule(board, x, y, subject, complement)
    for x, y, thing in things:
        board.put(x, y, thing)
    board.start()
    return board


def where(board: Board, kind: str) -> list[tuple[int, int]]:
    return [(i % board.width, i // board.width) for i, stack in enumerate(board.cells)
            if stack and stack[-1].kind == kind]


BABA = Thing("baba", "white")


def test_you_moves_and_walls_of_the_map_stop_it():
    board = board_with((1, 4, BABA), rules=[("baba", "is_agent", 1, 1)])
    board.step("left")
    assert where(board, "baba") == [(1, 4)]  # the map's boundary
    board.step("right")
    assert where(board, "baba") == [(2, 4)]


def test_reaching_a_win_object_wins_with_upstreams_reward():
    board = board_with((2, 4, BABA), (4, 4, Thing("fball", "red")),
                       rules=[("baba", "is_agent", 1, 1), ("fball", "is_goal", 1, 7)])
    assert board.step("right") == (0.0, False)
    reward, done = board.step("right")
    assert done and board.won and reward == 1 - 0.9 * 2 / 100


def test_pushing_a_block_into_line_forms_a_rule():
    # "ball is" at the top, "win" one row below, pushed up into place by baba.
    board = board_with((4, 4, BABA), (4, 3, Thing("rule_property", word="is_goal")),
                       (2, 2, Thing("rule_object", word="fball")),
                       (3, 2, Thing("rule_is", word="is")),
                       rules=[("baba", "is_agent", 1, 7)])
    assert "fball" not in board.rules.get("is_goal", {})
    board.step("up")  # pushes "win" from (4, 3) to (4, 2): "ball is win"
    assert board.rules["is_goal"] == {"fball": True}
    assert "ball is win" in board.active_rules_text()


def test_pushing_a_block_out_breaks_the_rule_and_a_stop_wall_blocks():
    wall = Thing("fwall", "grey")
    board = board_with((3, 5, BABA), (5, 5, wall),
                       rules=[("baba", "is_agent", 1, 7), ("fwall", "is_stop", 2, 3)])
    board.step("right")
    board.step("right")
    assert where(board, "baba") == [(4, 5)]  # the STOP wall holds
    # Walk under "stop" at (4, 3) and push it up, out of the rule.
    board.step("up")
    board.step("up")
    assert board.rules.get("is_stop", {}) == {}
    for _ in range(2):
        board.step("down")
    board.step("right")
    assert (5, 5) in [(i % 9, i // 9) for i, s in enumerate(board.cells)
                      if any(t.kind == "baba" for t in s)]  # walks onto the wall now


def test_a_chain_of_blocks_is_pushed_until_something_stops_it():
    board = board_with((2, 4, BABA), (3, 4, Thing("rule_is", word="is")),
                       (4, 4, Thing("rule_is", word="is")), rules=[("baba", "is_agent", 1, 1)])
    for _ in range(4):
        board.step("right")
    # The two blocks end against the boundary at x = 8; baba right behind them.
    assert [(x, y) for x, y in where(board, "rule_is") if y == 4] == [(6, 4), (7, 4)]
    assert where(board, "baba") == [(5, 4)]


def test_breaking_you_leaves_no_you():
    board = board_with((3, 6, BABA), rules=[("baba", "is_agent", 2, 5)])
    assert board.you() == "baba" and board.objects_text() is not None
    board.step("up")  # baba moves up, pushing "is" out of "baba is you"
    assert where(board, "baba") == [(3, 5)]
    assert board.you() is None and board.objects_text() is None
    board.step("left")  # nothing is YOU: nothing moves
    assert where(board, "baba") == [(3, 5)]


def test_an_object_is_object_rule_turns_one_into_the_other():
    board = board_with((2, 2, BABA), (5, 5, Thing("fball", "green")),
                       rules=[("baba", "is_agent", 1, 7), ("fball", "fkey", 1, 1)])
    board.step("right")
    assert board.top(5, 5).kind == "fkey"  # stacked on the ball, as upstream does
    assert [t.kind for t in board.cells[5 * 9 + 5]] == ["fball", "fkey"]


def test_frames_show_each_rule_blocks_word():
    """A rule block is drawn with its word (upstream's light square, the word on black),
    so the picture states the rules the text states: blocks of one word look alike,
    blocks of different words do not, and an object looks like no rule block."""
    import numpy as np

    from balrog_worker.envs.babaisai import TASKS, BabaIsAIGame
    from balrog_worker.envs.babaisai.frames import TILE

    seen: dict[str, np.ndarray] = {}
    objects = []
    for task in sorted(TASKS)[:12]:
        game = BabaIsAIGame(task)
        game.reset(1)
        frame, board = game.frame(), game.board
        assert frame.shape == (board.height * TILE, board.width * TILE, 3)
        for y in range(board.height):
            for x in range(board.width):
                thing = board.top(x, y)
                picture = frame[y * TILE:(y + 1) * TILE, x * TILE:(x + 1) * TILE]
                if thing is None or not thing.is_rule:
                    if thing is not None and thing.kind != "wall":
                        objects.append(picture)
                    continue
                inside = picture[5:-5, 5:-5]  # the black square and its word
                assert (inside.max(axis=2) > 90).sum() >= 6, thing.word  # the word's strokes
                if thing.word in seen:
                    assert np.array_equal(seen[thing.word], picture)
                seen.setdefault(thing.word, picture)
    words = list(seen)
    assert len(words) >= 5
    for i, first in enumerate(words):
        for second in words[i + 1:]:
            assert not np.array_equal(seen[first], seen[second]), (first, second)
    assert all(not np.array_equal(o, p) for o in objects for p in seen.values())
