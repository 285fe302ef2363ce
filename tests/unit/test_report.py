"""Report, what mirror() returns: a value with the fields, order and equality of the
dataclass it was, and the JSON the CLI prints."""

from __future__ import annotations

from asyncmirror.report import Failure, Report, Verification


def test_reports_compare_by_value() -> None:
    assert Report() == Report()
    assert Report(uploaded=1) != Report()
    assert Report(failed=[Failure("a", "553 denied")]) == Report(
        failed=[Failure("a", "553 denied")]
    )
    assert Report() != "Report()"


def test_fields_in_order_positionally_and_in_patterns() -> None:
    report = Report(3, 1, 300)
    assert (report.uploaded, report.skipped, report.bytes_sent) == (3, 1, 300)
    match report:
        case Report(uploaded, skipped):
            assert (uploaded, skipped) == (3, 1)
        case _:  # pragma: no cover
            raise AssertionError("no match")


def test_repr_shows_every_field() -> None:
    text = repr(Report(uploaded=2, failed=[Failure("x.txt", "553 denied")], notes=["n"]))
    assert text.startswith("Report(uploaded=2, skipped=0, ")
    assert "failed=[Failure(path='x.txt', error='553 denied')]" in text
    assert "notes=['n']" in text


def test_json_has_failures_as_objects() -> None:
    report = Report(uploaded=1, failed=[Failure("x.txt", "553 denied")], duration=1.23456)
    doc = report.to_json()
    assert doc["failed"] == [{"path": "x.txt", "error": "553 denied"}]
    assert doc["ok"] is False
    assert doc["duration"] == 1.235
    assert report.exit_code == 1


def test_json_and_the_line_say_what_verify_found() -> None:
    v = Verification("HASH SHA-256", 120, ("a.css", "b/c.js"), ("locked.txt",))
    doc = Report(verification=v).to_json()
    assert doc["verify"] == {
        "method": "HASH SHA-256",
        "compared": 120,
        "differ": ["a.css", "b/c.js"],
        "unknown": ["locked.txt"],
    }
    assert v.line() == (
        "--verify: compared 120 files by HASH SHA-256: 2 differ, "
        "1 could not be compared (the listing decided for them)"
    )
    assert "verify" not in Report().to_json()
