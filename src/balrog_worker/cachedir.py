"""Where built artefacts (joined model weights, unpacked game data) are kept between runs."""

import os
from pathlib import Path

CACHE_ENV = "BALROG_WORKER_CACHE"


def cache_root() -> Path:
    """``$BALROG_WORKER_CACHE``, else ``~/.cache/balrog-worker``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "balrog-worker")
