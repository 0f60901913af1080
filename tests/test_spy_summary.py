"""The py-spy summary the benchmarks attach: shares of samples, robust to a malformed line."""

from __future__ import annotations

from pathlib import Path

from benchmarks.ingestkit.spy import summary


def test_shares_are_counted_and_a_stack_without_its_count_is_skipped(tmp_path: Path) -> None:
    raw = tmp_path / "x-pyspy.raw"
    raw.write_text(
        "main (a.py:1);handle (b.py:2);verify (c.py:3) 3\n"
        "main (a.py:1);handle (b.py:2) 1\n"
        "main (a.py:1);handle (b.py:2);authorise (c.py:9);\n"  # py-spy wrote no count
    )
    text = summary(raw)
    assert text.startswith("py-spy: 4 samples (idle left out, 1 malformed lines skipped);")
    own = text.split("===== own time")[1].split("=====")[1]
    assert " 75.0%  verify c.py:3" in own and " 25.0%  handle b.py:2" in own
