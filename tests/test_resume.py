"""A cell's results directory survives reruns and crashes: nothing redone, nothing lost."""

import json

import pytest

from balrog_worker.cells import Cell
from balrog_worker.clients.base import Completion
from balrog_worker.clients.baselines import RandomClient
from balrog_worker.config import AgentSpec, CellConfig, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import CellStore, StoreError, read_jsonl

from .conftest import run_cli

RUN = ["run", "--env", "babyai", "--task", "goto", "--model", "random", "--episodes", "3",
       "--max-steps", "20"]


def records(directory, name="episodes.jsonl"):
    return [json.loads(line) for line in (directory / name).read_text().splitlines()]


def trajectories(directory):
    steps = records(directory, "steps.jsonl")
    by_episode = {}
    for step in steps:
        by_episode.setdefault(step["episode_index"], []).append(
            (step["step"], step["observation"], step["action"]))
    return {k: sorted(v) for k, v in by_episode.items()}


def test_cli_run_writes_the_contract_records(tmp_path):
    out = tmp_path / "cell"
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    episodes = records(out)
    assert sorted(e["episode_index"] for e in episodes) == [0, 1, 2]
    for episode in episodes:
        assert episode["run_id"] == "random__naive__babyai__goto"
        assert {"model": "random", "agent": "naive", "env": "babyai", "task": "goto",
                "coordination_level": None, "observation_mode": None}.items() <= episode.items()
        assert 0.0 <= episode["progression"] <= 1.0
        assert episode["num_steps"] <= 20 and episode["llm_calls"] == episode["num_steps"]
        for key in ("seed", "episode_return", "success", "invalid_actions", "input_tokens",
                    "output_tokens", "cost_usd", "duration_s", "end_reason", "terminated",
                    "truncated"):
            assert key in episode
    steps = records(out, "steps.jsonl")
    assert len(steps) == sum(e["num_steps"] for e in episodes)
    assert all(s["observation"].startswith("Current Observation:\n") and s["valid"]
               for s in steps)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["aggregate"]["episodes"] == 3
    assert summary["cell"]["task"] == "goto" and "python" in summary["versions"]


def test_rerun_adds_nothing_and_a_deleted_episode_comes_back_identical(tmp_path):
    out = tmp_path / "cell"
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    before_episodes = (out / "episodes.jsonl").read_bytes()
    before_steps = (out / "steps.jsonl").read_bytes()
    original = trajectories(out)

    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    assert (out / "episodes.jsonl").read_bytes() == before_episodes
    assert (out / "steps.jsonl").read_bytes() == before_steps

    # Delete episode 1's record (its steps become orphans) and rerun.
    kept = [line for line in before_episodes.decode().splitlines()
            if json.loads(line)["episode_index"] != 1]
    (out / "episodes.jsonl").write_text("\n".join(kept) + "\n")
    deleted = next(json.loads(line) for line in before_episodes.decode().splitlines()
                   if json.loads(line)["episode_index"] == 1)
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    episodes = records(out)
    assert sorted(e["episode_index"] for e in episodes) == [0, 1, 2]
    restored = next(e for e in episodes if e["episode_index"] == 1)
    assert restored["seed"] == deleted["seed"]
    assert restored["num_steps"] == deleted["num_steps"]
    assert trajectories(out) == original  # same trajectories, no duplicated step


def test_a_torn_last_record_is_redone_and_nothing_else(tmp_path):
    out = tmp_path / "cell"
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    lines = (out / "episodes.jsonl").read_bytes().splitlines(keepends=True)
    torn_index = json.loads(lines[-1])["episode_index"]
    # A crash mid-write: the last episode line is cut short.
    (out / "episodes.jsonl").write_bytes(b"".join(lines[:-1]) + lines[-1][:25])
    original = trajectories(out)
    result = run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    assert "ran 1 episodes (2 already recorded)" in result.stderr
    episodes = records(out)
    assert sorted(e["episode_index"] for e in episodes) == [0, 1, 2]
    assert [e["episode_index"] for e in episodes][-1] == torn_index
    assert trajectories(out) == original


def test_more_episodes_later_only_runs_the_new_ones(tmp_path):
    out = tmp_path / "cell"
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    first = records(out)
    result = run_cli(*RUN[:-4], "--episodes", "5", "--max-steps", "20", "--out", str(out),
                     cwd=tmp_path)
    assert "ran 2 episodes (3 already recorded)" in result.stderr
    assert records(out)[:3] == first


def test_records_made_with_other_settings_are_not_mixed(tmp_path):
    out = tmp_path / "cell"
    run_cli(*RUN, "--out", str(out), cwd=tmp_path)
    before = (out / "episodes.jsonl").read_bytes()
    result = run_cli(*RUN[:-2], "--max-steps", "30", "--out", str(out), cwd=tmp_path,
                     check=False)
    assert result.returncode == 2
    assert "changed: max_steps" in result.stderr
    assert result.stderr.count("\n") == 1
    assert (out / "episodes.jsonl").read_bytes() == before


def test_two_runs_cannot_write_one_directory(tmp_path):
    with CellStore(tmp_path) as _, pytest.raises(StoreError, match="another run is writing"):
        CellStore(tmp_path).__enter__()


def test_failed_episodes_are_recorded_then_retried(tmp_path):
    class FlakyClient(RandomClient):
        """Fault injection: every call raises until ``fail`` is cleared."""

        def __init__(self):
            self.fail = True

        def complete(self, request):
            if self.fail:
                raise ConnectionError("server went away")
            return super().complete(request)

    config = CellConfig(cell=Cell("random", "naive", "babyai", "goto"),
                        model=ModelSpec("random", "random"), agent=AgentSpec("naive", "naive"),
                        episodes=2, max_steps=5)
    client = FlakyClient()
    report = run_cell(config, tmp_path, client=client)
    assert report.failed == 2
    failed, _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert all(e["failed"] and "server went away" in e["error"] for e in failed)
    client.fail = False
    report = run_cell(config, tmp_path, client=client)
    assert (report.ran, report.failed) == (2, 0)
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert sorted(e["episode_index"] for e in episodes) == [0, 1]
    assert not any(e["failed"] for e in episodes)


def test_a_failed_episode_keeps_the_usage_of_the_calls_it_made(tmp_path):
    class DiesOnThirdCall(RandomClient):
        """Fault injection: two answered (and paid) calls, then the server is gone."""

        calls = 0

        def complete(self, request):
            self.calls += 1
            if self.calls == 3:
                raise ConnectionError("server went away")
            answer = super().complete(request)
            return Completion(answer.text, input_tokens=100, output_tokens=3, retries=1)

    config = CellConfig(cell=Cell("random", "naive", "babyai", "goto"),
                        model=ModelSpec("random", "random"), agent=AgentSpec("naive", "naive"),
                        episodes=1, max_steps=5)
    assert run_cell(config, tmp_path, client=DiesOnThirdCall()).failed == 1
    (episode,), _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert episode["failed"] and episode["num_steps"] == 2
    assert (episode["llm_calls"], episode["input_tokens"], episode["output_tokens"],
            episode["retries"]) == (2, 200, 6, 2)
    assert read_jsonl(tmp_path / "steps.jsonl") == ([], 0)  # the rerun plays it again


def test_bad_cli_input_fails_in_one_line_before_writing(tmp_path):
    out = tmp_path / "cell"
    cases = [
        (["run", "--env", "babyai", "--task", "fly", "--model", "random"], "unknown task 'fly'"),
        (["run", "--env", "nethacc/x", "--model", "random"], "unknown env 'nethacc'"),
        (["run", "--env", "babyai/goto", "--model", "gpt-9"], "unknown model 'gpt-9'"),
        (["run", "--env", "babyai/goto", "--model", "random", "--agent", "clever"],
         "unknown agent type 'clever'"),
        (["run", "--env", "babyai/goto", "--model", "random", "--coordination-level", "2"],
         "multi-agent envs only"),
    ]
    for args, expected in cases:
        result = run_cli(*args, "--out", str(out), cwd=tmp_path, check=False)
        assert result.returncode == 2, args
        assert expected in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert not out.exists()


def test_envs_lists_every_family_and_the_babyai_tasks():
    ids = run_cli("envs").stdout.split()
    assert ids[:5] == ["babyai/goto", "babyai/pickup", "babyai/open", "babyai/putnext",
                       "babyai/pick_up_seq_go_to"]
    assert {i.split("/")[0] for i in ids} >= {"babyai", "minihack", "nethack", "minigrid"}
    assert len(ids) == len(set(ids))
