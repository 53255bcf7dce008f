"""Parsing documents from elsewhere (params files, MOSAIC configs, cell configs) within
bounds: a size, a nesting depth, and for YAML the size of the document once its aliases
are expanded. A document past a bound is refused in one line, at once: a 1.6 KB "billion
laughs" params file would otherwise expand to gigabytes, and a deep one overflow the
parser's recursion."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import yaml

MAX_BYTES = 4 << 20  # a params file of the paper's grid is about 7 KB
MAX_DEPTH = 100
MAX_NODES = 200_000  # values in the document once aliases are expanded


class DocumentError(ValueError):
    """A document that cannot be read within the bounds, or at all (one line)."""


def read_text(path: str | Path, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of the regular file ``path``, at most ``limit`` bytes. Raises
    FileNotFoundError for a missing file and DocumentError for anything else wrong."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # before open: a pipe would block it
            raise DocumentError("is not a regular file")
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise DocumentError("is not a regular file")
            data = file.read(limit + 1)
    except IsADirectoryError:
        raise DocumentError("is a directory") from None
    except FileNotFoundError:
        raise
    except OSError as error:
        raise DocumentError(f"cannot be read: {error.strerror}") from None
    if len(data) > limit:
        raise DocumentError(f"is larger than {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DocumentError("is not UTF-8 text") from None


def load_yaml(text: str) -> object:
    """``text`` as YAML (the safe subset), refused past the bounds."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise DocumentError(f"is nested deeper than {MAX_DEPTH} levels") from None
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1} " if mark else ""
            raise DocumentError(f"{where}is not valid YAML") from None
        if node is None:
            return None
        _check_expansion(node)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError as error:  # a tag the safe loader does not build
            mark = getattr(error, "problem_mark", None)
            where = f"line {mark.line + 1} " if mark else ""
            raise DocumentError(f"{where}is not valid YAML (a tag it cannot read)") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node) -> None:
    """Walk the node graph as construction would, aliases expanded, up to the bounds."""
    pending = [(root, 1)]
    visited = 0
    while pending:
        node, depth = pending.pop()
        visited += 1
        if visited > MAX_NODES:
            raise DocumentError(f"expands to more than {MAX_NODES:,} values (aliases "
                                "included)")
        if depth > MAX_DEPTH:
            raise DocumentError(f"is nested deeper than {MAX_DEPTH} levels")
        if isinstance(node, yaml.SequenceNode):
            pending.extend((child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                pending.extend(((key, depth + 1), (value, depth + 1)))


def load_json(text: str) -> object:
    """``text`` as JSON, refused past the depth bound."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise DocumentError(f"is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as error:
        raise DocumentError(f"is not valid JSON ({error})") from None
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise DocumentError(f"is nested deeper than {MAX_DEPTH} levels")
        children = item.values() if isinstance(item, dict) else (
            item if isinstance(item, list) else ())
        pending.extend((child, depth + 1) for child in children)
    return value
