"""MOSAIC's worker discovery: the ``mosaic.workers`` entry point ``balrog``.

MOSAIC lists the workers installed in its environment by loading each entry point of
the ``mosaic.workers`` group and calling it for (WorkerMetadata, WorkerCapabilities),
classes of MOSAIC's own (``gym_gui.core.worker``), so this is imported only there.
"""

from __future__ import annotations

from balrog_worker import __version__

# The env families MOSAIC's GUI may launch this worker with (its names for them).
MOSAIC_ENV_FAMILIES = ("babyai", "minigrid", "minihack", "crafter", "nle", "textworld",
                       "multigrid", "mosaic_multigrid", "ini_multigrid", "pettingzoo")


def get_worker_metadata() -> tuple:
    """(WorkerMetadata, WorkerCapabilities) of this worker, in MOSAIC's classes."""
    from gym_gui.core.worker import WorkerCapabilities, WorkerMetadata

    metadata = WorkerMetadata(
        name="BALROG Worker", version=__version__,
        description="LLM and VLM agents on BALROG's games as BALROG plays them, and "
                    "MOSAIC's MultiGrid extension",
        author="balrog-worker", homepage="https://github.com/balrog-ai/BALROG",
        upstream_library="balrog", upstream_version="BALROG protocol", license="MIT")
    capabilities = WorkerCapabilities(
        worker_type="balrog", supported_paradigms=("llm_agent",),
        env_families=MOSAIC_ENV_FAMILIES, action_spaces=("discrete", "text"),
        observation_spaces=("text", "image", "mixed"),
        max_agents=3,  # a cell drives up to three players (MultiGrid Collect)
        supports_self_play=False, supports_population=False, supports_checkpointing=False,
        supports_pause_resume=True,  # interactive mode
        requires_gpu=False, gpu_memory_mb=None, cpu_cores=1, estimated_memory_mb=1024)
    return metadata, capabilities
