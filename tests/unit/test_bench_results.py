"""The benchmark's pure results module: which lftp run a verify scenario is compared
with, and how its targets are judged.  (No timing here: numbers are given.)"""

from __future__ import annotations

from benchmarks.results import Params, Sample, evaluate_targets, summarize


def sample(tool: str, scenario: str, wall: float, *, stors: int = 0) -> Sample:
    return Sample(tool, scenario, 1, wall, 0.5, 0.1, 40_000, 2000, stors, 0, stors, 0)


def params(files: int = 2000, rtt: float = 50.0) -> Params:
    return Params(files, 1, rtt, 1, 8, True, 0, 512, 0, 900.0)


SAMPLES = [
    sample("asyncmirror", "first", 40.0, stors=2000),
    sample("lftp", "first", 100.0, stors=2000),
    sample("asyncmirror", "unchanged", 2.0),
    sample("lftp", "unchanged", 20.0),
    sample("asyncmirror", "verify_digest", 7.0),
    sample("asyncmirror", "verify_download", 90.0),
]


def test_verify_rows_compare_with_lftps_rerun_and_first_upload() -> None:
    summary = summarize(SAMPLES)
    assert summary["verify_digest"]["lftp"]["wall"] == 20.0
    assert summary["verify_digest"]["ratio"]["wall"] == 7.0 / 20.0
    assert summary["verify_download"]["lftp"]["wall"] == 100.0
    assert summary["verify_download"]["ratio"]["wall"] == 0.9


def test_verify_targets_judged_at_the_issues_conditions() -> None:
    targets = {
        t.scenario + ":" + t.metric: t for t in evaluate_targets(summarize(SAMPLES), params())
    }
    digest, download = targets["verify_digest:wall"], targets["verify_download:wall"]
    assert (digest.value, digest.met, digest.applies) == (0.35, False, True)
    assert (download.value, download.met, download.applies) == (0.9, True, True)


def test_verify_targets_flag_a_smaller_site() -> None:
    targets = evaluate_targets(summarize(SAMPLES), params(files=50))
    verify = [t for t in targets if t.scenario.startswith("verify")]
    assert len(verify) == 2
    assert all(not t.applies and "2000-file site" in t.why_not for t in verify)
