"""Records from elsewhere are untrusted (issue 24, first part): a results tree copied from
another lab, a model id from a GUI, a run id from MOSAIC. Nothing in them becomes a path
outside the output, HTML that runs, or matplotlib markup; one bad cell or record never
hides the rest."""

import json
import shutil

import pytest

from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell
from balrog_worker.viewer import data
from tests.conftest import run_cli
from tests.test_mosaic_worker import clean_env


@pytest.fixture(scope="module")
def clean_results(tmp_path_factory):
    """Two real cells (BabyAI goto, 2 episodes of 3 steps; MiniGrid empty, 1 episode)."""
    results = tmp_path_factory.mktemp("clean") / "runs"
    for env, task, episodes in (("babyai", "goto", 2), ("minigrid", "empty", 1)):
        config = CellConfig(cell=Cell("random", "naive", env, task),
                            model=BUILTIN_MODELS["random"], agent=AgentSpec("naive", "naive"),
                            episodes=episodes, max_steps=3)
        run_cell(config, results / config.cell.slug)
    return results


@pytest.fixture
def results(clean_results, tmp_path):
    """A fresh copy, deep under tmp_path (so that climbing out of it stays in tmp_path):
    anything written outside ``lab`` escaped."""
    copy = tmp_path / "a" / "b" / "c" / "d" / "lab" / "runs"
    shutil.copytree(clean_results, copy)
    return copy


def cells(results):
    return sorted(path for path in results.iterdir() if path.is_dir())


def rewrite_episodes(cell, change):
    path = cell / "episodes.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    change(records)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def outside_lab(tmp_path):
    """Files written under tmp_path but not inside the results' lab folder."""
    return [path for path in tmp_path.rglob("*") if path.is_file() and "lab" not in path.parts]


def report(results):
    reports = results.parent / "reports"
    run_cli("aggregate", str(results), "--out", str(reports))
    run_cli("report", str(reports), "--out", str(reports / "index.html"), "--results",
            str(results))
    return (reports / "index.html").read_text()


def test_an_episode_index_is_neither_html_nor_a_path(results, tmp_path):
    hostile = ["<img src=x onerror=alert(1)>", "../../../../../PWNED", 1.5, True, -1, None]
    first, second = cells(results)
    rewrite_episodes(first, lambda records: records.append(
        {**records[0], "episode_index": hostile[0]}))
    rewrite_episodes(second, lambda records: records.extend(
        {**records[0], "episode_index": value} for value in hostile[1:]))
    page = report(results)
    assert "<img src=x" not in page and "onerror=alert" not in page
    assert outside_lab(tmp_path) == [] and not list(tmp_path.rglob("*PWNED*"))
    # The well-formed episodes are all still there.
    assert [row["episode_index"] for row in data.episodes(first)] == [0, 1]
    assert [row["episode_index"] for row in data.episodes(second)] == [0]


def test_a_summary_names_neither_its_cell_nor_hides_the_grid(results, tmp_path):
    first, second = cells(results)
    summary = json.loads((first / "summary.json").read_text())
    summary["cell"]["slug"] = "../../../../outside/slug"
    summary["aggregate"]["progression"] = "lots"
    (first / "summary.json").write_text(json.dumps(summary))
    (second / "summary.json").write_text("[1, 2]")
    broken = results / "broken__cell"
    broken.mkdir()
    (broken / "summary.json").write_bytes(b"\xff\xfe not utf-8")
    rows = {row["slug"]: row for row in data.grid(results)}
    assert set(rows) == {first.name, second.name}  # the list one, with no cell keys
    assert rows[first.name]["progression"] is None and rows[first.name]["env"] == "babyai"
    report(results)
    assert outside_lab(tmp_path) == [] and not list(tmp_path.rglob("outside"))


@pytest.mark.parametrize("slug", ["..", ".", ".hidden", "a/b", "%2e%2e"])
def test_a_cell_name_that_leaves_the_results_is_refused(results, slug):
    with pytest.raises(KeyError):
        data.cell_dir(results, slug)


@pytest.mark.parametrize("run_id", ["../escaped", "/tmp/absolute", ".hidden", "a/b", "x" * 200])
def test_a_mosaic_run_id_that_leaves_the_telemetry_dir_is_refused(tmp_path, run_id):
    telemetry = tmp_path / "telemetry"
    result = run_cli("--run-id", run_id, "--env", "babyai", "--task", "BabyAI-GoToRedBall-v0",
                     "--client", "openai", "--model", "m", "--agent-type", "naive",
                     "--num-episodes", "1", "--max-steps", "2", "--telemetry-dir",
                     str(telemetry), "--base-url", "http://127.0.0.1:9/v1", check=False,
                     env=clean_env(tmp_path))
    assert result.returncode == 1
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["type"] == "error" and "telemetry dir" in event["message"]
    assert not (tmp_path / "escaped").exists() and not telemetry.exists()


def test_a_model_name_is_drawn_as_it_is_written(results, tmp_path):
    from balrog_worker.analysis.figures import draw_figures

    for cell in cells(results):
        rewrite_episodes(cell, lambda records: [r.update(model="$\\pwn{$") for r in records])
    reports = tmp_path / "reports"
    run_cli("aggregate", str(results), "--out", str(reports))
    paths = draw_figures(reports / "tables", reports / "figures")
    assert paths and all(path.stat().st_size > 0 for path in paths)


LAUGHS = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))


def huge_grid(repo) -> str:
    """The default params with a grid of 10^7 cells (10,000 models x 1,000 agents)."""
    import yaml

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["models"] = {f"m{i}": {"backend": "random"} for i in range(10_000)}
    params["agents"] = {f"a{i}": {"type": "naive"} for i in range(1_000)}
    params["grid"] = [{"models": list(params["models"]), "agents": list(params["agents"]),
                       "envs": ["crafter"]}]
    return yaml.safe_dump(params)


@pytest.mark.parametrize("kind", ["laughs", "deep", "large", "device", "grid"])
def test_a_params_bomb_is_refused_at_once_in_one_line(kind, tmp_path, repo):
    import time

    path = tmp_path / "params.yaml"
    if kind == "laughs":
        path.write_text(LAUGHS)
    elif kind == "deep":
        path.write_text("[" * 20_000 + "]" * 20_000)
    elif kind == "large":
        path.write_text("# padding\n" * 600_000)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.write_text(huge_grid(repo))
    started = time.perf_counter()
    result = run_cli("validate", str(path), check=False, timeout=60)
    took = time.perf_counter() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(path) in line and any(word in line for word in (
        "expands to more than", "nested deeper", "larger than", "not a regular file",
        "more than 1,000,000 cells")), line
    assert took < (30 if kind == "grid" else 10), took


def test_a_deep_mosaic_config_is_an_error_event(tmp_path):
    config = tmp_path / "config.json"
    config.write_text("[" * 100_000 + "]" * 100_000)
    result = run_cli("--config", str(config), "--run-id", "r1", check=False,
                     env=clean_env(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["type"] == "error" and "nested deeper" in event["message"]


@pytest.mark.parametrize("damage", ["huge num_steps", "beyond the cap", "string seed",
                                    "huge seed", "string step",
                                    "integer action", "list summary", "device summary",
                                    "device records"])
def test_replay_of_a_damaged_record_is_one_line(results, damage):
    cell = cells(results)[0]

    def first(records):  # episode 0's record (episodes are committed as they finish)
        return next(r for r in records if r["episode_index"] == 0 and r.get("step", 0) == 0)

    if damage == "huge num_steps":
        rewrite_episodes(cell, lambda records: first(records).update(num_steps=10**15))
    elif damage == "beyond the cap":  # as many step records as claimed, past the cap
        summary = json.loads((cell / "summary.json").read_text())
        (cell / "summary.json").write_text(json.dumps({**summary, "max_steps": 2}))
        (cell / "cell.json").unlink(missing_ok=True)
    elif damage == "string seed":
        rewrite_episodes(cell, lambda records: first(records).update(seed="x"))
    elif damage == "huge seed":
        rewrite_episodes(cell, lambda records: first(records).update(seed=2**70))
    elif damage in ("string step", "integer action"):
        path = cell / "steps.jsonl"
        steps = [json.loads(line) for line in path.read_text().splitlines()]
        first(steps).update({"step": "0"} if damage == "string step" else {"action": 3})
        path.write_text("".join(json.dumps(s) + "\n" for s in steps))
    elif damage == "list summary":
        (cell / "summary.json").write_text("[]")
        (cell / "cell.json").unlink(missing_ok=True)
    elif damage == "device summary":
        (cell / "summary.json").unlink()
        (cell / "summary.json").symlink_to("/dev/zero")
        (cell / "cell.json").unlink(missing_ok=True)
    else:
        (cell / "episodes.jsonl").unlink()
        (cell / "episodes.jsonl").symlink_to("/dev/zero")
    result = run_cli("replay", str(cell), "--episode", "0", check=False, timeout=60)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert str(cell) in line and any(words in line for words in (
        "claims 1000000000000000 steps", "stops episodes at 2", "out of range",
        "is not a whole number", "step record is damaged",
        "not a JSON object", "cannot be read", "not a finished cell")), line


@pytest.fixture
def viewer_server(results):
    """The viewer serving ``results`` on a free port; ``get(path, host)`` is a request's
    status."""
    import http.client
    import threading

    from balrog_worker.viewer import serve

    server = serve(results, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    def get(path, host=f"127.0.0.1:{port}"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        connection.close()
        return response.status

    get.port = port
    yield get
    server.shutdown()
    server.server_close()


def test_the_viewer_answers_only_loopback_hosts_and_bad_paths_with_404(results, viewer_server):
    get, port = viewer_server, viewer_server.port
    slug = cells(results)[0].name
    assert get("/data/cells.json") == 200
    assert get(f"/data/cells/{slug}/0.json", host=f"localhost:{port}") == 200
    assert get("/data/cells.json", host="attacker.example:80") == 421
    assert get("/data/cells/%2e%2e/episodes.json") == 404
    assert get(f"/data/cells/{slug}/%C2%B2.json") == 404
    assert get(f"/data/cells/{slug}/99.json") == 404
    rewrite_episodes(cells(results)[0], lambda records: next(
        r for r in records if r["episode_index"] == 1).update(seed="not a seed"))
    assert get(f"/data/cells/{slug}/1.json") == 404  # answered, not a dropped connection


def test_the_viewer_replays_an_episode_once_for_requests_at_the_same_time(
        results, viewer_server, monkeypatch):
    """Replaying is the viewer's costly answer: requests arriving together share one
    replay (and a later one its kept answer), and a game that raises is answered too."""
    import threading
    import time

    from balrog_worker.viewer import data

    replayed, real = [], data.episode

    def slow_episode(path, index):
        replayed.append(index)
        time.sleep(0.5)  # long enough for every request below to arrive meanwhile
        if index == 1:
            raise RuntimeError("the game refused the seed")
        return real(path, index)

    monkeypatch.setattr(data, "episode", slow_episode)
    slug = cells(results)[0].name
    statuses = []
    requests = [threading.Thread(target=lambda: statuses.append(
        viewer_server(f"/data/cells/{slug}/0.json"))) for _ in range(6)]
    for request in requests:
        request.start()
    for request in requests:
        request.join()
    assert statuses == [200] * 6 and replayed == [0]
    assert viewer_server(f"/data/cells/{slug}/0.json") == 200 and replayed == [0]
    assert viewer_server(f"/data/cells/{slug}/1.json") == 404 and replayed == [0, 1]
    assert viewer_server("/data/cells.json") == 200  # and the server goes on


@pytest.mark.parametrize(("field", "value", "kind"), [
    ("max_steps", "abc", "a whole number"), ("temperature", "hot", "a number"),
    ("seed", "x", "a whole number"), ("env_name", ["babyai"], "text"),
    ("run_id", 5, "text"), ("task", None, "text"), ("num_episodes", True, "a whole number"),
    ("api_key", ["sk-secret-0123456789abcdef"], "text")])
def test_a_mistyped_mosaic_config_field_is_an_error_event(tmp_path, field, value, kind):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"run_id": "r1", field: value}))
    result = run_cli("--config", str(config), check=False, env=clean_env(tmp_path))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (event,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert event["type"] == "error" and event["message"] == (
        f"--config: {field} must be {kind}, not {json_kind(value)}")
    assert "sk-secret" not in result.stdout + result.stderr


def json_kind(value) -> str:
    return {str: "text", int: "a whole number", bool: "true or false", list: "a list",
            type(None): "null"}[type(value)]


def test_aggregate_skips_damaged_lines_and_keeps_the_rest(results, tmp_path):
    """One garbage line, a NaN, an Infinity or a mistyped field in the records: that line
    is skipped with a warning naming the file and line, and every other record counts."""
    reports = tmp_path / "clean-reports"
    run_cli("aggregate", str(results), "--out", str(reports))
    clean = (reports / "tables" / "usage.csv").read_text()
    cell = cells(results)[0]
    steps = cell / "steps.jsonl"
    lines = steps.read_text().splitlines()
    damaged = json.loads(lines[0])
    nan = json.dumps(damaged).replace('"latency_s": ', '"latency_s": NaN, "x": ')
    steps.write_text("\n".join([*lines, "garbage {", json.dumps({**damaged, "latency_s": 1e999}),
                                json.dumps({**damaged, "input_tokens": "many"}), nan]) + "\n")
    episodes = cell / "episodes.jsonl"
    episodes.write_text(episodes.read_text() + "not json\n" + json.dumps(
        {**json.loads(episodes.read_text().splitlines()[0]), "progression": "lots"}) + "\n")
    reports = tmp_path / "reports"
    result = run_cli("aggregate", str(results), "--out", str(reports))
    assert "Traceback" not in result.stderr
    assert "steps.jsonl:" in result.stderr and "episodes.jsonl:" in result.stderr
    assert (reports / "tables" / "usage.csv").read_text() == clean


def test_a_cache_path_that_is_a_folder_is_one_line_before_anything_runs(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(
        "models:\n  m: {backend: openai_compatible, model: x, base_url: "
        "'http://127.0.0.1:9/v1'}\nagents:\n  naive: {}\nenvs:\n  babyai: {tasks: [goto], "
        "episodes: 1, max_steps: 2}\ngrid:\n  - {models: [m], agents: [naive], envs: [babyai]}\n")
    cache = tmp_path / "cache"
    (cache / "responses.sqlite").mkdir(parents=True)
    result = run_cli("run", "--params", str(params), "--env", "babyai", "--task", "goto",
                     "--model", "m", "--agent", "naive", "--out", str(tmp_path / "out"),
                     check=False, env={"BALROG_WORKER_CACHE": str(cache)})
    # Exit 1, as for a damaged cache: the machine's state, not the input, is at fault.
    assert result.returncode == 1 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "responses.sqlite is not a file" in line and "--cache off" in line
    assert not (tmp_path / "out").exists()


def test_run_of_one_cell_resolves_that_cell_only(monkeypatch, tmp_path):
    """A cluster job runs one cell; expanding a grid of a million cells to check each
    would cost every job seconds. Its own cell is still checked."""
    from balrog_worker.cli import main
    from balrog_worker.config import Params

    def expand(self):
        raise AssertionError("run expanded the whole grid")

    monkeypatch.setattr(Params, "cells", expand)
    params = tmp_path / "params.yaml"
    params.write_text("models:\n  r: {backend: random}\nagents:\n  naive: {}\n"
                      "  shots: {type: few_shot}\nenvs:\n  babyai: {tasks: [goto]}\n"
                      "  crafter: {tasks: [default]}\n"
                      "grid:\n  - {models: [r], agents: [naive, shots], envs: [babyai]}\n")
    out = tmp_path / "out"
    assert main(["run", "--params", str(params), "--env", "babyai/goto", "--model", "r",
                 "--agent", "naive", "--episodes", "1", "--max-steps", "2",
                 "--out", str(out)]) == 0
    assert (out / "summary.json").is_file()
    # few_shot on Crafter (no scripted expert to show) is still refused, in one line.
    result = run_cli("run", "--params", str(params), "--env", "crafter/default", "--model",
                     "r", "--agent", "shots", "--out", str(tmp_path / "out2"), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "few_shot needs demonstrations" in result.stderr


def test_a_cache_on_a_full_disk_is_one_warning_and_the_run_goes_on(tmp_path, monkeypatch,
                                                                   caplog):
    """With 8 KB free, SQLite cannot grow its WAL index and says "disk I/O error" (not
    "full") as the cache opens: the run must go on without the cache, as it does when
    the disk fills later. The fault is injected where SQLite reports it, and the free
    space where the kernel reports it (a filesystem of 8 KB needs root to mount)."""
    import shutil
    import sqlite3
    from collections import namedtuple

    from balrog_worker.cli import main
    from balrog_worker.clients import cache as cache_module
    from tests.stubs import openai_server

    class NoRoomConnection:
        def __init__(self, real):
            self.real = real

        def execute(self, sql, *args):
            if sql.startswith("PRAGMA journal_mode"):
                raise sqlite3.OperationalError("disk I/O error")
            return self.real.execute(sql, *args)

        def close(self):
            self.real.close()

    real_connect, real_usage = sqlite3.connect, shutil.disk_usage
    usage = namedtuple("usage", "total used free")
    cache_dir = tmp_path / "cache"
    monkeypatch.setattr(cache_module.sqlite3, "connect",
                        lambda *a, **k: NoRoomConnection(real_connect(*a, **k)))
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(65536, 57344, 8192)
                        if str(path).startswith(str(cache_dir)) else real_usage(path))
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(cache_dir))
    monkeypatch.setattr(cache_module, "_said_full", set())
    with openai_server.openai_stub() as stub:
        params = tmp_path / "params.yaml"
        params.write_text(
            f"models:\n  gpt: {{backend: openai_compatible, model: gpt-test, base_url: "
            f"'{stub.url}/v1', max_retries: 0}}\nagents:\n  naive: {{}}\nenvs:\n  babyai: "
            "{tasks: [goto]}\ngrid:\n  - {models: [gpt], agents: [naive], envs: [babyai]}\n")
        out = tmp_path / "out"
        status = main(["run", "--params", str(params), "--env", "babyai/goto", "--model",
                       "gpt", "--episodes", "2", "--max-steps", "3", "--out", str(out)])
        calls = len(stub.requests)
    assert status == 0
    warnings = [r.message for r in caplog.records if "cannot be written" in r.message]
    assert len(warnings) == 1 and "disk full" in warnings[0] and "goes on" in warnings[0]
    episodes = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 2 and sum(e["llm_calls"] for e in episodes) == calls == 6


def test_command_lines_are_split_across_reads_and_an_endless_one_is_skipped(monkeypatch):
    """serve's and MOSAIC's interactive commands: a line may arrive in pieces; one past
    the bound is skipped to its end (said once), and the lines after it still count."""
    import os
    import threading

    from balrog_worker import command_lines as module

    monkeypatch.setattr(module, "MAX_COMMAND_BYTES", 1000)
    read, write = os.pipe()

    def feed():
        for piece in (b'{"cmd": "pi', b'ng"}\n{"a"', b": 1}\n", b"x" * 700, b"x" * 700,
                      b"x" * 700 + b"\n", b'{"cmd": "stop"}\n', b"tail"):
            os.write(write, piece)
        os.close(write)

    feeder = threading.Thread(target=feed)
    feeder.start()
    lines = list(module.command_lines(read))
    feeder.join()
    os.close(read)
    assert lines == [b'{"cmd": "ping"}', b'{"a": 1}', None, b'{"cmd": "stop"}', b"tail"]


def test_serve_answers_a_command_too_long_to_keep_and_goes_on(tmp_path):
    import subprocess

    from tests.conftest import BIN

    process = subprocess.Popen([str(BIN / "balrog-worker"), "serve"], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        process.stdin.write(b'{"cmd": "init", "config": "' + b"x" * (17 << 20) + b'"}\n')
        process.stdin.write(b'{"cmd": "ping"}\n')
        process.stdin.flush()
        first = json.loads(process.stdout.readline())
        assert first["ok"] is False and "longer than 16,777,216 bytes" in first["error"]
        assert json.loads(process.stdout.readline()) == {"ok": True, "pong": True}
    finally:
        process.kill()
