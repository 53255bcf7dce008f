"""Issue 24's fuzz test: a few hundred damaged copies of a real results tree (the full
run, `python -m tests.fuzz_results --trials 1500`, prints its figures), each read by
`aggregate`, `report`, `replay` and the viewer."""

from tests.fuzz_results import TRIAL_LIMIT_S, fuzz


def test_damaged_results_never_raise_hang_or_write_outside_their_output(tmp_path):
    outcome = fuzz(tmp_path, trials=200, seed=20261207)
    assert outcome.trials == 200 and outcome.mutations >= 300
    # every kind of damage was tried
    assert set(outcome.kinds) >= {"set_value", "delete_key", "truncate", "splice",
                                  "repeat_line", "drop_line", "whole_type", "special",
                                  "rename"}
    assert outcome.problems == [], "\n".join(outcome.problems[:20])
    assert outcome.slowest_s < TRIAL_LIMIT_S
