"""The cluster profiles: what each evaluate job asks the scheduler for, and that every
key of the SLURM and Kubernetes profiles is an option Snakemake and its plugins know."""

import re
from pathlib import Path

import pytest

from balrog_worker.config import load_params
from tests.test_workflow import make_project, sh

API_RESOURCES = {"openai_calls", "anthropic_calls", "gemini_calls", "vllm_calls",
                 "openai_compatible_calls"}

GRID = {
    "seed": 1,
    "paths": {"results": "results/runs", "reports": "reports"},
    "evaluation": {"parallel_episodes": 4},
    "models": {
        "random": {"backend": "random"},
        "qwen": {"backend": "local", "model": "qwen2.5-coder-0.5b-instruct-q4_k_m",
                 "threads": 3},
        "gpt": {"backend": "openai", "model": "gpt-4o-mini", "concurrency": 16},
        "claude": {"backend": "anthropic", "model": "claude-3-5-haiku-latest",
                   "concurrency": 2},
        "llama": {"backend": "vllm", "model": "meta-llama/Llama-3.1-8B-Instruct",
                  "base_url": "http://gpu-node-7:8000/v1", "concurrency": 64},
    },
    "agents": {"naive": {}},
    "envs": {"babyai": {"tasks": ["goto"], "episodes": 3, "max_steps": 12},
             "multigrid": {"tasks": ["soccer"], "episodes": 10, "max_steps": 4}},
    "grid": {"models": ["random", "qwen", "gpt", "claude", "llama"], "agents": ["naive"],
             "envs": ["babyai", "multigrid"], "coordination_levels": [1],
             "observation_modes": ["egocentric"]},
}


def planned_jobs(output: str) -> dict[str, dict[str, str]]:
    """Each evaluate job of a dry run's listing: cell slug -> its resources."""
    jobs, rule, cell = {}, None, None
    for line in output.splitlines():
        if line.startswith("rule "):
            rule, cell = line[5:].rstrip(":"), None
        elif rule == "evaluate" and (m := re.match(r"\s+wildcards: cell=(\S+)", line)):
            cell = m.group(1)
        elif rule == "evaluate" and cell and (m := re.match(r"\s+resources: (.*)", line)):
            jobs[cell] = dict(item.split("=", 1) for item in m.group(1).split(", "))
    return jobs


@pytest.fixture(scope="module")
def project(tmp_path_factory, repo):
    return make_project(repo, tmp_path_factory.mktemp("cluster") / "project", GRID)


@pytest.fixture(scope="module")
def slurm_plan(project):
    """The SLURM profile's dry run; needs no SLURM commands (it submits nothing)."""
    result = sh("snakemake", "--profile", "profiles/slurm", "-n", cwd=project)
    return planned_jobs(result.stdout + result.stderr)


def test_the_slurm_dry_run_plans_one_evaluate_job_per_cell(project, slurm_plan):
    cells = load_params(project / "params.yaml").cells()
    assert len(cells) == 10
    assert sorted(slurm_plan) == sorted(cell.slug for cell in cells)


def test_each_api_cell_claims_the_calls_it_keeps_in_flight(slurm_plan):
    def claims(cell):
        return {k: int(v) for k, v in slurm_plan[cell].items() if k in API_RESOURCES}

    soccer = "multigrid__soccer__level1__egocentric"
    # babyai: min(concurrency 16, 4 parallel episodes, 3 episodes) = 3
    assert claims("gpt__naive__babyai__goto") == {"openai_calls": 3}
    # soccer: 4 episodes at once, 2 players each asked at once
    assert claims(f"gpt__naive__{soccer}") == {"openai_calls": 8}
    assert claims(f"claude__naive__{soccer}") == {"anthropic_calls": 2}  # its concurrency
    assert claims("llama__naive__babyai__goto") == {"vllm_calls": 3}
    for baseline in ("random", "qwen"):  # no provider is called: nothing claimed
        assert claims(f"{baseline}__naive__babyai__goto") == {}
        assert claims(f"{baseline}__naive__{soccer}") == {}


def test_slurm_jobs_get_the_profile_defaults(slurm_plan):
    job = slurm_plan["gpt__naive__babyai__goto"]
    assert (job["runtime"], job["mem_mb"]) == ("240", "4096")  # minutes, first attempt


def test_a_global_cap_bounds_what_one_job_may_claim(project):
    result = sh("snakemake", "--profile", "profiles/slurm", "-n",
                "--resources", "openai_calls=5", cwd=project)
    plan = planned_jobs(result.stdout + result.stderr)
    assert plan["gpt__naive__multigrid__soccer__level1__egocentric"]["openai_calls"] == "5"
    assert plan["gpt__naive__babyai__goto"]["openai_calls"] == "3"


def profile_args(profile: Path):
    """The profile as Snakemake reads it: an unknown key is a usage error (exit 2)."""
    from snakemake.cli import get_argument_parser

    return get_argument_parser(profiles=[str(profile)]).parse_args([])


def test_the_profiles_use_only_options_snakemake_and_the_plugins_know(repo, tmp_path):
    """A Kubernetes dry run cannot run offline (it asks the storage whether outputs
    exist), so its profile is checked as Snakemake parses it, plugin options included."""
    slurm = profile_args(repo / "profiles/slurm")
    assert slurm.executor == "slurm"
    assert slurm.rerun_incomplete and slurm.retries == 2 and slurm.latency_wait == 60
    kube = profile_args(repo / "profiles/kubernetes")
    assert kube.executor == "kubernetes"
    assert kube.kubernetes_namespace == "default"
    assert kube.default_storage_provider == "s3"
    assert kube.default_storage_prefix.startswith("s3://")
    assert kube.container_image != slurm.container_image  # not Snakemake's own image
    # the plugin refuses a GPU request without its maker (a vLLM cell with `serve`)
    assert kube.set_resources["evaluate"]["gpu_manufacturer"].raw == "nvidia"
    for args in (slurm, kube):
        assert not args.resources  # the caps are the workflow profile's alone
    (tmp_path / "config.yaml").write_text("executor: kubernetes\nkubernetes-namespce: x\n")
    with pytest.raises(SystemExit):  # a misspelt key would be caught
        profile_args(tmp_path)


def test_the_workflow_profile_caps_every_provider_on_every_run(repo, project):
    caps = profile_args(repo / "profiles/default").resources
    assert set(caps) == API_RESOURCES
    # Snakemake loads it beside a cluster profile, and a job's claim is cut to its cap.
    low = project / "profiles" / "default" / "config.yaml"
    low.write_text(low.read_text().replace("openai_calls: 64", "openai_calls: 6"))
    try:
        result = sh("snakemake", "--profile", "profiles/slurm", "-n", cwd=project)
    finally:
        low.write_text(low.read_text().replace("openai_calls: 6", "openai_calls: 64"))
    assert "workflow specific profile profiles/default" in result.stdout + result.stderr
    plan = planned_jobs(result.stdout + result.stderr)
    assert plan["gpt__naive__multigrid__soccer__level1__egocentric"]["openai_calls"] == "6"


def test_a_soccer_cell_against_a_model_claims_calls_of_both_models(repo, tmp_path):
    grid = {**GRID, "envs": {"multigrid": {"tasks": ["soccer"], "episodes": 10, "max_steps": 4,
                                           "opponent": "model:claude"}},
            "grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["multigrid"],
                     "coordination_levels": [1], "observation_modes": ["egocentric"]}}
    project = make_project(repo, tmp_path / "project", grid)
    result = sh("snakemake", "--profile", "profiles/slurm", "-n", cwd=project)
    (job,) = planned_jobs(result.stdout + result.stderr).values()
    # gpt drives team 1 (8 calls: 4 episodes x 2 players), claude team 2 (its concurrency)
    assert {k: int(v) for k, v in job.items() if k in API_RESOURCES} == {
        "openai_calls": 8, "anthropic_calls": 2}
