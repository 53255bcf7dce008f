"""Text for a MiniGrid/BabyAI agent's partial view, written from the view itself.

The agent sees a square view that rotates with it; in that view it stands at the bottom
centre, facing up. Each visible object becomes one line giving its offset from the agent
("a blue key 1 step right and 3 steps forward"); walls are reported only where they
bound the agent's straight lines of sight (forward, left, right), which is what a player
needs to navigate without a wall of wall-lines.
"""

from __future__ import annotations

from dataclasses import dataclass

from minigrid.core.world_object import Door, WorldObj


@dataclass(frozen=True)
class SeenObject:
    """An object in the agent's view: ``forward`` steps ahead, ``right`` steps to the right
    (negative: to the left)."""

    name: str
    forward: int
    right: int

    def phrase(self) -> str:
        offsets = []
        if self.right:
            side = "right" if self.right > 0 else "left"
            offsets.append(_steps(abs(self.right), side))
        if self.forward:
            offsets.append(_steps(self.forward, "forward"))
        return f"{_article(self.name)} {self.name} {' and '.join(offsets)}"


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def _article(noun_phrase: str) -> str:
    return "an" if noun_phrase[0] in "aeiou" else "a"


def object_name(obj: WorldObj) -> str:
    """'red ball', 'locked blue door', 'wall', 'lava'..."""
    if obj.type in ("wall", "lava", "goal", "floor"):
        return obj.type
    if isinstance(obj, Door):
        state = "locked" if obj.is_locked else ("open" if obj.is_open else "closed")
        return f"{state} {obj.color} door"
    return f"{obj.color} {obj.type}"


def seen_objects(env) -> list[SeenObject]:
    """Everything the agent of a MiniGrid env can see, nearest first."""
    grid, visible = env.gen_obs_grid()
    size = grid.width
    centre, back = size // 2, size - 1
    seen: list[SeenObject] = []
    nearest_wall: dict[str, SeenObject] = {}
    for i in range(size):
        for j in range(size):
            obj = grid.get(i, j)
            if obj is None or not visible[i, j] or (i, j) == (centre, back):
                continue  # the agent's own cell holds what it carries
            item = SeenObject(object_name(obj), forward=back - j, right=i - centre)
            if obj.type != "wall":
                seen.append(item)
                continue
            line = _line_of_sight(item)
            if line and (line not in nearest_wall or _dist(item) < _dist(nearest_wall[line])):
                nearest_wall[line] = item
    seen.extend(nearest_wall.values())
    return sorted(seen, key=lambda s: (_dist(s), s.forward, s.right, s.name))


def _line_of_sight(item: SeenObject) -> str | None:
    if item.right == 0:
        return "forward"
    if item.forward == 0:
        return "right" if item.right > 0 else "left"
    return None


def _dist(item: SeenObject) -> int:
    return abs(item.forward) + abs(item.right)


def describe_view(env) -> str:
    """The lines a text agent reads: what it sees, then what it carries."""
    lines = [item.phrase() for item in seen_objects(env)]
    if not lines:
        lines = ["nothing but empty floor"]
    carrying = env.carrying
    held = f"{_article(object_name(carrying))} {object_name(carrying)}" if carrying else "nothing"
    return "You see:\n" + "\n".join(f"- {line}" for line in lines) + f"\nYou are carrying {held}."
