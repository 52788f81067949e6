"""tests/conftest.py: a test marked needs_shared skips when its path is absent, and the run's summary says so."""

from pathlib import Path

pytest_plugins = ["pytester"]


def test_missing_shared_is_reported_in_its_own_section(pytester):
    pytester.makeconftest(Path(__file__).with_name("conftest.py").read_text())
    pytester.makeini("[pytest]\nmarkers = needs_shared: x\n")
    pytester.makepyfile(test_x="""
        import pytest

        @pytest.mark.needs_shared("/nonexistent/shared/data")
        def test_full(): pass

        @pytest.mark.needs_shared(__file__)
        def test_here(): pass
    """)
    result = pytester.runpytest("-ra")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.re_match_lines([r".*NOT RUN: 1 test\(s\) need \.\./shared.*",
                                  r"test_x.py::test_full: needs /nonexistent/shared/data, which this machine lacks"])
    assert "test_here" not in result.stdout.str()
