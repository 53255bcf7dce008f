"""A grid cell: one (model, agent, env, task[, coordination level, observation mode,
opponent]).

A cell is the unit of work of the pipeline (one Snakemake job) and the key every record
carries. Its slug names its results directory, so it must be readable and safe on any
filesystem whatever the model id looks like (``meta-llama/Llama-3.1-8B``).
"""

import re
from dataclasses import asdict, dataclass

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
SLUG_SEPARATOR = "__"


def slugify(text: str) -> str:
    """Filesystem-safe form of a name: runs of other characters become one '-'."""
    slug = _UNSAFE.sub("-", text).strip("-.")
    slug = slug.replace(SLUG_SEPARATOR, "-")
    if not re.search("[A-Za-z0-9]", slug):  # '', '_', '-' would name no directory well
        raise ValueError(f"name {text!r} has no letters or digits to build a slug from")
    return slug


@dataclass(frozen=True)
class Cell:
    model: str
    agent: str
    env: str
    task: str
    coordination_level: int | None = None
    observation_mode: str | None = None
    # Soccer's other team when it is not the default scripted one ("random",
    # "model:<name>"): a match against another model is another experiment, so another
    # cell, with a directory of its own.
    opponent: str | None = None

    @property
    def slug(self) -> str:
        parts = [self.model, self.agent, self.env, self.task]
        if self.coordination_level is not None:
            parts.append(f"level{self.coordination_level}")
        if self.observation_mode is not None:
            parts.append(self.observation_mode)
        if self.opponent is not None:
            parts.append(f"vs-{self.opponent}")
        return SLUG_SEPARATOR.join(slugify(part) for part in parts)

    def keys(self) -> dict:
        """The cell keys every record carries (null where an axis does not apply); the
        opponent is among a multi-agent episode's facts."""
        keys = asdict(self)
        del keys["opponent"]
        return keys
