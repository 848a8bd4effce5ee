"""pytest-omen against real pytest, through pytester."""

import json
import xml.etree.ElementTree as ET

import pytest

TESTS = """
import pytest

def test_ok():
    pass

def test_flaky():
    assert 1 == 2, "timeout talking to the cache"

def test_real_bug():
    assert "a" == "b"

@pytest.mark.parametrize("n", [1, 2, 3])
def test_param(n):
    assert n != 2

class TestGroup:
    def test_in_class(self):
        raise RuntimeError("boom")
"""


def entry(test_id, selector=None, mode="run-ignore", expires="2099-01-01T00:00:00Z"):
    return {
        "id": test_id,
        "selector": selector or "",
        "runner": "pytest",
        "classname": test_id.split("::")[0],
        "name": test_id.split("::")[-1],
        "reason": "flaky on the default branch",
        "evidence": "failed and passed on the same commit 2 times",
        "added": "2026-01-01T00:00:00Z",
        "expires": expires,
        "mode": mode,
        "source": "auto",
        "auto_release": True,
    }


def write_quarantine(pytester, *entries, name=".omen/quarantine.json", version=1):
    path = pytester.path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": version, "tests": list(entries)}))
    return path


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_app=TESTS)
    return pytester


def outcomes(result):
    """Outcome counts, without the tests `-k` deselected."""
    counts = result.parseoutcomes()
    counts.pop("deselected", None)
    return counts


def test_run_ignore_failure_does_not_fail_the_session(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"))
    result = project.runpytest("-k", "test_ok or test_flaky")
    assert result.ret == 0
    assert outcomes(result) == {"passed": 1, "xfailed": 1}
    result.stdout.fnmatch_lines(["omen: 1 quarantined test (0 passed, 1 failed and was ignored)"])


def test_other_failures_still_fail(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"))
    result = project.runpytest()
    assert result.ret == 1
    o = outcomes(result)
    assert o["failed"] == 3  # test_real_bug, test_param[2], TestGroup::test_in_class
    assert o["xfailed"] == 1


def test_run_ignore_pass_passes(project):
    write_quarantine(project, entry("test_app::test_ok", "test_app.py::test_ok"))
    result = project.runpytest("-k", "test_ok")
    assert result.ret == 0
    assert outcomes(result) == {"passed": 1}
    result.stdout.fnmatch_lines(["omen: 1 quarantined test (1 passed, 0 failed and were ignored)"])


def test_skip_mode_skips_with_reason_and_evidence(project):
    write_quarantine(project, entry("test_app::test_real_bug", "test_app.py::test_real_bug", mode="skip"))
    result = project.runpytest("-rs", "-k", "test_real_bug")
    assert result.ret == 0
    assert outcomes(result) == {"skipped": 1}
    result.stdout.fnmatch_lines(["*quarantined by omen: flaky on the default branch (failed and passed on the same commit 2 times)*"])


def test_xfail_mode_is_non_strict(project):
    write_quarantine(
        project,
        entry("test_app::test_flaky", "test_app.py::test_flaky", mode="xfail"),
        entry("test_app::test_ok", "test_app.py::test_ok", mode="xfail"),
    )
    result = project.runpytest("-k", "test_ok or test_flaky")
    assert result.ret == 0
    assert outcomes(result) == {"xfailed": 1, "xpassed": 1}


def test_global_mode_overrides_entries(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"))
    result = project.runpytest("-k", "test_flaky", "--omen-mode", "skip")
    assert outcomes(result) == {"skipped": 1}
    off = project.runpytest("-k", "test_flaky", "--omen-mode", "off")
    assert off.ret == 1
    assert outcomes(off) == {"failed": 1}
    off.stdout.fnmatch_lines(["omen: quarantine off (--omen-mode off)"])


def test_parametrized_ids_match_exactly(project):
    write_quarantine(project, entry("test_app::test_param[2]", "test_app.py::test_param[2]"))
    result = project.runpytest("-k", "test_param")
    assert result.ret == 0
    assert outcomes(result) == {"passed": 2, "xfailed": 1}


def test_classes_and_identity_matching_without_a_selector(project):
    # Omen recorded the test from JUnit XML (classname "test_app.TestGroup"); no node id given.
    write_quarantine(project, entry("test_app.TestGroup::test_in_class"))
    result = project.runpytest("-k", "test_in_class")
    assert result.ret == 0
    assert outcomes(result) == {"xfailed": 1}


def test_missing_file_is_a_notice(project):
    result = project.runpytest("-k", "test_flaky")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["omen: no quarantine file at *quarantine.json; nothing quarantined"])


def test_invalid_file_is_a_clear_error_and_the_session_still_runs(project):
    path = project.path / ".omen" / "quarantine.json"
    path.parent.mkdir()
    path.write_text("{ not json")
    result = project.runpytest("-k", "test_ok or test_flaky")
    assert result.ret == 1
    assert outcomes(result) == {"passed": 1, "failed": 1}
    result.stdout.fnmatch_lines(["omen: ERROR: quarantine file *quarantine.json is not valid JSON*running without quarantine"])


def test_unknown_version_is_refused(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"), version=2)
    result = project.runpytest("-k", "test_flaky")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["omen: ERROR: quarantine file * has version 2; this plugin reads version 1*"])


def test_expired_entries_are_reported_and_not_applied(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky", expires="2020-01-01T00:00:00Z"))
    result = project.runpytest("-k", "test_flaky")
    assert result.ret == 1
    result.stdout.fnmatch_lines(["omen: expired quarantine entry no longer applied: test_app::test_flaky (expired 2020-01-01T00:00:00Z)"])


def test_plugin_can_be_disabled(project):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"))
    result = project.runpytest("-p", "no:omen", "-k", "test_flaky")
    assert result.ret == 1
    assert "omen:" not in result.stdout.str()


def test_junitxml_records_the_real_outcome(project):
    write_quarantine(
        project,
        entry("test_app::test_flaky", "test_app.py::test_flaky"),
        entry("test_app::test_ok", "test_app.py::test_ok"),
    )
    result = project.runpytest("-k", "test_ok or test_flaky", "--junitxml=report.xml")
    assert result.ret == 0
    root = ET.parse(str(project.path / "report.xml")).getroot()
    props = {}
    for case in root.iter("testcase"):
        props[case.get("name")] = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["test_flaky"]["omen.outcome"] == "failed"
    assert "timeout talking to the cache" in props["test_flaky"]["omen.message"]
    assert props["test_ok"]["omen.outcome"] == "passed"


def test_unmatched_entries_are_listed_under_verbose(project):
    write_quarantine(project, entry("test_app::test_gone", "test_app.py::test_gone"))
    quiet = project.runpytest("-k", "test_ok")
    assert "matched no collected test" not in quiet.stdout.str()
    loud = project.runpytest("-v", "-k", "test_ok")
    loud.stdout.fnmatch_lines(["omen: quarantine entry matched no collected test: test_app::test_gone"])


def test_ini_option_and_environment_variable(project, monkeypatch):
    write_quarantine(project, entry("test_app::test_flaky", "test_app.py::test_flaky"), name="ci/q.json")
    project.makeini("[pytest]\nomen_quarantine = ci/q.json\n")
    assert project.runpytest("-k", "test_flaky").ret == 0
    project.makeini("[pytest]\n")
    monkeypatch.setenv("OMEN_QUARANTINE", str(project.path / "ci" / "q.json"))
    assert project.runpytest("-k", "test_flaky").ret == 0
    monkeypatch.delenv("OMEN_QUARANTINE")
    assert project.runpytest("-k", "test_flaky", "--omen-quarantine", "ci/q.json").ret == 0
