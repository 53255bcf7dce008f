"""BALROG's own wording, read at run time from a BALROG source tree the user has.

This project asks models in its own words (the same information as BALROG's prompts).
BALROG's leaderboard was made with BALROG's words, and wording changes scores, so an
agent may ask in BALROG's instead (``wording: balrog``, ``balrog_source: <tree>``): its
answer-format text and each environment's instructions are read from the tree's files,
never copied into this repository, and every episode records which tree it used
(``prompt_wording: balrog@<digest of the files read>``).

What is read, per BALROG's layout (``balrog/agents``, ``balrog/environments``):

- an agent's answer-format text: the string its ``act`` method appends to the last
  message (a literal, read from the source without running it);
- an environment's instructions: its package's ``get_instruction_prompt``, run on the
  module's literal constants. Nothing else of the tree runs: its imports and non-literal
  values are left out, and a prompt function that reaches for more than building text
  (a private attribute, a builtin beyond string and container basics) is refused.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass
from pathlib import Path

# Our agent types -> BALROG's agent modules (BALROG has no planner).
AGENT_FILES = {"naive": "naive.py", "cot": "chain_of_thought.py",
               "robust_naive": "robust_naive.py", "robust_cot": "robust_cot.py",
               "few_shot": "few_shot.py"}
# Our envs -> BALROG's environment packages. MiniHack's instructions list the actions of
# the live NLE environment object, which this reader does not build.
ENV_PACKAGES = {"babyai": "babyai_text", "babaisai": "babaisai", "crafter": "crafter",
                "nethack": "nle", "textworld": "textworld"}


class WordingError(ValueError):
    """The BALROG tree cannot give the text asked for (one line, naming the file)."""


@dataclass(frozen=True)
class BalrogWording:
    root: Path  # the folder holding balrog/

    @property
    def label(self) -> str:
        """What episodes record: BALROG's wording, and which files gave it."""
        return f"balrog@{self.digest()}"

    def digest(self) -> str:
        """A hash of the tree's files that give text (read now: an edited tree is
        another wording)."""
        hashed = hashlib.sha256()
        for path in sorted(self._files()):
            hashed.update(path.relative_to(self.root).as_posix().encode())
            hashed.update(path.read_bytes())
        return hashed.hexdigest()[:12]

    def _files(self) -> list[Path]:
        agents = [self.root / "balrog" / "agents" / name for name in AGENT_FILES.values()]
        packages = [self.root / "balrog" / "environments" / name
                    for name in ENV_PACKAGES.values()]
        found = [path for path in agents if path.is_file()]
        for package in packages:
            found += [path for path in package.glob("*.py") if path.is_file()]
        return found

    def answer_format(self, agent_type: str) -> str:
        if agent_type not in AGENT_FILES:
            raise WordingError(f"BALROG has no {agent_type!r} agent: wording: balrog needs "
                               f"one of {', '.join(AGENT_FILES)}")
        path = self.root / "balrog" / "agents" / AGENT_FILES[agent_type]
        return _act_instruction(path)

    def instructions(self, env: str, task: str, mission: str | None = None) -> str:
        if env not in ENV_PACKAGES:
            raise WordingError(f"wording: balrog reads the instructions of "
                               f"{', '.join(ENV_PACKAGES)}, not {env!r}")
        package = self.root / "balrog" / "environments" / ENV_PACKAGES[env]
        prompt = _module_function(package / "__init__.py", "get_instruction_prompt")
        try:
            if env == "babyai":
                text = prompt(None, mission=mission)
            elif env in ("crafter", "nethack"):
                text = prompt(task=task)
            else:
                text = prompt(None, task)
        except Exception as error:  # the tree's code, run on our task name
            raise WordingError(f"{package}: get_instruction_prompt failed for {task!r} "
                               f"({type(error).__name__}: {error})") from None
        if not isinstance(text, str):
            raise WordingError(f"{package}: get_instruction_prompt gave no text")
        return text


def load(source: str | Path) -> BalrogWording:
    """The BALROG tree at ``source`` (its root, holding ``balrog/``), checked."""
    root = Path(source).expanduser()
    if not (root / "balrog" / "agents").is_dir() or not (
            root / "balrog" / "environments").is_dir():
        raise WordingError(f"balrog_source {source}: no balrog/agents and "
                           "balrog/environments there; point it at a BALROG checkout")
    return BalrogWording(root.resolve())


MAX_FILE_BYTES = 1 << 20  # BALROG's largest prompt module is a few kB


def _parse(path: Path) -> ast.Module:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise WordingError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes; not read")
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except FileNotFoundError:
        raise WordingError(f"{path}: not found in the BALROG tree") from None
    except (SyntaxError, UnicodeDecodeError, OSError) as error:
        raise WordingError(f"{path}: cannot be read ({type(error).__name__})") from None


def _act_instruction(path: Path) -> str:
    """The string an agent's ``act`` appends: the first name assigned a string literal
    (or a literal's ``.strip()``) whose name mentions "instruction"."""
    for node in ast.walk(_parse(path)):
        if not (isinstance(node, ast.FunctionDef) and node.name == "act"):
            continue
        for statement in ast.walk(node):
            if not (isinstance(statement, ast.Assign) and len(statement.targets) == 1
                    and isinstance(statement.targets[0], ast.Name)
                    and "instruction" in statement.targets[0].id):
                continue
            value, strip = statement.value, False
            if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                    and value.func.attr == "strip" and not value.args):
                value, strip = value.func.value, True
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value.strip() if strip else value.value
    raise WordingError(f"{path}: no answer-format text in its act() (not BALROG's layout?)")


def _module_function(path: Path, name: str):
    """Function ``name`` of the module at ``path``, with the module's literal constants
    (and those it imports from a sibling module); nothing else of the module runs."""
    namespace = _module_namespace(path, depth=0, function=name)
    if name not in namespace:
        raise WordingError(f"{path}: no {name}() (not BALROG's layout?)")
    return namespace[name]


# What a prompt function may use: building text from constants needs no more. A params
# file names the tree, and params come from elsewhere too, so the tree's code is not run
# as a program: module-level values must be literals, and a function that names a
# private attribute, imports or loops without end in sight (``while``) is refused; it
# runs with these builtins only.
SAFE_BUILTINS = {name: __builtins__[name] if isinstance(__builtins__, dict)
                 else getattr(__builtins__, name)
                 for name in ("str", "dict", "list", "tuple", "len", "enumerate", "zip",
                              "sorted", "min", "max", "isinstance", "KeyError", "ValueError")}


def _literal(node: ast.expr):
    """A literal value (``dict(a="...")`` included), or raise ValueError."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "dict" and not node.args):
        return {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    return ast.literal_eval(node)


def _check_function(path: Path, function: ast.FunctionDef) -> None:
    for node in ast.walk(function):
        private = ((isinstance(node, ast.Attribute) and node.attr.startswith("_"))
                   or (isinstance(node, ast.Name) and node.id.startswith("_")))
        if private or isinstance(node, (ast.Import, ast.ImportFrom, ast.Global,
                                        ast.Nonlocal, ast.While)):
            raise WordingError(f"{path}: {function.name}() does more than build text "
                               f"(line {node.lineno}); not read")


def _module_namespace(path: Path, depth: int, function: str | None = None) -> dict:
    tree = _parse(path)
    namespace: dict = {"__builtins__": SAFE_BUILTINS}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1 and depth == 0:
            # ``from .env import ACTIONS``: the sibling's constants, read the same way
            sibling = path.parent / f"{node.module}.py" if node.module else None
            if sibling is not None and sibling.is_file():
                names = _module_namespace(sibling, depth + 1)
                for alias in node.names:
                    if alias.name in names:
                        namespace[alias.asname or alias.name] = names[alias.name]
        elif (isinstance(node, ast.Assign) and len(node.targets) == 1
              and isinstance(node.targets[0], ast.Name)):
            try:
                namespace[node.targets[0].id] = _literal(node.value)
            except (ValueError, TypeError, SyntaxError, RecursionError):
                continue  # not a literal (a wrapper, a factory): not needed for text
        elif isinstance(node, ast.FunctionDef) and node.name == function:
            _check_function(path, node)
            module = ast.Module(body=[node], type_ignores=[])
            exec(compile(module, str(path), "exec"), namespace)  # a checked def only
    return namespace
