"""A scripted expert for BabaIsAI: breadth-first search over board states.

Each state is the whole board (every stack of every cell); the rules are read again after
every move, as the game does, so the search finds plans that make, break and chain rules.
Moves that lose, or that leave no object YOU (the level would reset), are pruned. The
shortest winning plan found is cached by state, so following it costs one search.
"""

from __future__ import annotations

from collections import deque

from balrog_worker.envs.babaisai.engine import DIRECTIONS, OBJECTS, Board, Thing

MOVES = ("up", "right", "down", "left")
NODE_LIMIT = 200_000  # states explored per search before giving up
UNREACHABLE = 50  # _rule_distance of a board where no win rule can be lined up

_plans: dict[tuple, str] = {}  # state -> the next move of a winning plan from it


def state_key(board: Board) -> tuple:
    return tuple(map(tuple, board.cells))


def clone(board: Board) -> Board:
    """A board to play on without touching ``board``: things are immutable, so only the
    stacks are copied."""
    copy = Board.__new__(Board)
    copy.__dict__.update(board.__dict__)
    copy.cells = [stack.copy() for stack in board.cells]
    return copy


def has_you(board: Board) -> bool:
    return any(stack and board.has(stack[-1], "is_agent") for stack in board.cells)


def solve(board: Board, max_depth: int) -> list[str] | None:
    """The shortest winning sequence of moves within ``max_depth`` (None if none is found
    within the search budget)."""
    start = clone(board)
    frontier = deque([(start, ())])
    seen = {state_key(start)}
    while frontier:
        current, path = frontier.popleft()
        if len(path) >= max_depth:
            continue
        for move in MOVES:
            child = clone(current)
            reward, done = child.step(move)
            if reward > 0:
                return [*path, move]
            if done or not has_you(child):
                continue
            key = state_key(child)
            if key in seen:
                continue
            seen.add(key)
            if len(seen) > NODE_LIMIT:
                return None
            frontier.append((child, (*path, move)))
    return None


def _verified(board: Board, plan: list[str] | None) -> list[str] | None:
    """``plan`` if replaying it on the real board wins (the push search moves the YOU
    object by teleporting it along walks), else None."""
    if not plan:
        return None
    replay = clone(board)
    for move in plan:
        reward, done = replay.step(move)
        if reward > 0:
            return plan
        if done:
            return None
    return None


def next_action(board: Board, remaining_steps: int) -> str:
    """The expert's move from ``board``: the next move of a shortest winning plan, or
    idle when no plan is found."""
    key = state_key(board)
    if key not in _plans:
        plan = _verified(board, solve_by_pushes(board, remaining_steps))
        plan = plan or solve(board, remaining_steps)
        if not plan:
            return "idle"
        replay = clone(board)
        for move in plan:  # remember every state of the plan
            _plans[state_key(replay)] = move
            replay.step(move)
        if len(_plans) > 100_000:  # a bounded memory, whatever the grid
            _plans.clear()
            _plans[key] = plan[0]
    return _plans[key]


def _you_cells(board: Board) -> list[tuple[int, int]]:
    return [(i % board.width, i // board.width) for i, stack in enumerate(board.cells)
            if stack and board.has(stack[-1], "is_agent")]


def _walk(board: Board, start: tuple[int, int]):
    """Cells the YOU object reaches without pushing anything, each with the moves that
    reach it, and the moves to a WIN object if one is reachable (None otherwise)."""
    paths = {start: ()}
    queue = deque([start])
    while queue:
        x, y = queue.popleft()
        for move in MOVES:
            dx, dy = DIRECTIONS[move]
            cell = (x + dx, y + dy)
            if cell in paths or not board.inside(*cell):
                continue
            top = board.top(*cell)
            if board.pushable(top) or not board.enterable(top) or board.has(top, "is_defeat"):
                continue
            paths[cell] = (*paths[(x, y)], move)
            if board.has(top, "is_goal"):
                return paths, paths[cell]
            queue.append(cell)
    return paths, None


def _rule_distance(board: Board) -> int:
    """A guess at the pushes still needed before some object is WIN: 0 when one on the
    board already is; else how many cells the blocks of the nearest possible
    ``X is win`` (X an object on the board) lie from a line around an "is" block."""
    blocks: dict[str, list[tuple[int, int]]] = {"is": [], "win": [], "subject": []}
    present = set()
    for index, stack in enumerate(board.cells):
        if not stack:
            continue
        top, cell = stack[-1], (index % board.width, index // board.width)
        if top.kind == "rule_is":
            blocks["is"].append(cell)
        elif top.kind == "rule_property" and top.word == "is_goal":
            blocks["win"].append(cell)
        elif top.kind == "rule_object":
            blocks["subject"].append((cell, top.word))
        elif top.kind in OBJECTS:
            present.add(top.kind)
    if any(board.has(Thing(kind), "is_goal") for kind in present):
        return 0

    def pushes_to(block: tuple[int, int], target: tuple[int, int]) -> int:
        # A block against the border stays there: nothing can stand beyond it to push
        # it away (Sokoban's dead lines).
        for axis, last in ((0, board.width - 2), (1, board.height - 2)):
            if block[axis] in (1, last) and target[axis] != block[axis]:
                return UNREACHABLE
        return abs(block[0] - target[0]) + abs(block[1] - target[1])

    best = UNREACHABLE if blocks["is"] and blocks["win"] else 0
    for ix, iy in blocks["is"]:
        for dx, dy in ((1, 0), (0, 1)):
            for win in blocks["win"]:
                to_line = pushes_to(win, (ix + dx, iy + dy))
                for subject, word in blocks["subject"]:
                    if word in present:
                        best = min(best, to_line + pushes_to(subject, (ix - dx, iy - dy)))
    return min(best, UNREACHABLE)


def solve_by_pushes(board: Board, max_depth: int) -> list[str] | None:
    """Search over pushes, with walking in between collapsed (as Sokoban solvers do):
    a state is the board without the YOU object plus the region it can walk in. Only
    for boards with one YOU object.

    A best-first search: pushes made plus ``_rule_distance`` (so pushes that bring a win
    rule together are tried first), then fewer moves. A plan is any within the cap, not
    always the shortest; the BFS of ``solve`` is there when this one finds none."""
    import heapq

    if len(_you_cells(board)) != 1:
        return None
    counter = 0
    heap = [(0, 0, 0, counter, clone(board), ())]
    seen = set()
    while heap:
        _, pushes, _, _, current, path = heapq.heappop(heap)
        (ax, ay), = _you_cells(current)
        paths, win = _walk(current, (ax, ay))
        if win is not None:
            if len(path) + len(win) <= max_depth:
                return [*path, *win]
            continue
        agent = current.lift(ax, ay)
        key = (state_key(current), min(paths))
        current.put(ax, ay, agent)
        if key in seen:
            continue
        seen.add(key)
        if len(seen) > NODE_LIMIT // 10:
            return None
        for cell, walk in paths.items():
            for move in MOVES:
                dx, dy = DIRECTIONS[move]
                if not current.pushable(current.top(cell[0] + dx, cell[1] + dy)):
                    continue
                moves = (*path, *walk, move)
                if len(moves) > max_depth:
                    continue
                child = clone(current)
                child.put(*cell, child.lift(ax, ay))
                reward, done = child.step(move)
                if reward > 0:
                    return list(moves)
                if done or len(_you_cells(child)) != 1:
                    continue
                counter += 1
                estimate = pushes + 1 + _rule_distance(child)
                heapq.heappush(heap, (estimate, pushes + 1, len(moves), counter, child, moves))
    return None
