"""The pytest plugin: reads Omen's quarantine file and applies it to collected tests.

Modes (per entry, or for every entry with ``--omen-mode``):

``run-ignore``
    The test runs. If it fails, the failure is reported as an expected failure (``xfailed``) so
    it does not fail the session; if it passes, it passes. The real outcome and failure message
    are recorded as ``omen.outcome`` / ``omen.message`` properties in ``--junitxml`` output, so
    Omen keeps learning from the test.
``skip``
    The test is skipped, with the quarantine reason and evidence.
``xfail``
    The test is marked as a non-strict expected failure.
``off``
    (``--omen-mode off`` only) the quarantine is ignored.

The plugin never crashes a test session over Omen's own file: a missing file is a one-line
notice, an invalid one a clear error naming the file, and either way the session runs as if
nothing were quarantined.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from pathlib import Path
from typing import Dict, List, Optional

import pytest

from . import QUARANTINE_VERSION

_MODES = ("run-ignore", "skip", "xfail")
_DEFAULT_PATH = os.path.join(".omen", "quarantine.json")


def pytest_addoption(parser):
    group = parser.getgroup("omen", "Omen quarantine")
    group.addoption(
        "--omen-quarantine",
        dest="omen_quarantine",
        metavar="PATH",
        default=None,
        help="Omen quarantine file (default: ini omen_quarantine, env OMEN_QUARANTINE, "
        "then .omen/quarantine.json in the rootdir).",
    )
    group.addoption(
        "--omen-mode",
        dest="omen_mode",
        choices=("run-ignore", "skip", "xfail", "off"),
        default=None,
        help="Apply this mode to every quarantined test instead of each entry's own; 'off' ignores the quarantine.",
    )
    parser.addini("omen_quarantine", "Omen quarantine file, relative to the rootdir.", default=None)


def _collapse(text: str) -> str:
    return " ".join(text.split())


_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")


def _normalize_name(name: str) -> str:
    """Omen's name rule: collapse whitespace, mask memory addresses (see docs/design/identity-and-parsing.md)."""
    return _ADDRESS.sub("0x\u2026", _collapse(name))


def omen_id(nodeid: str) -> str:
    """The identity Omen gives this test when it reads pytest's JUnit XML.

    pytest writes ``classname`` as the node id's path (``/`` → ``.``, without ``.py``) plus its
    classes, and ``name`` as the last part; Omen's identity is ``classname::name``.
    """
    parts = nodeid.split("::")
    path = parts[0]
    if path.endswith(".py"):
        path = path[:-3]
    names = [path.replace("/", ".").replace("\\", ".")] + parts[1:]
    classname = ".".join(names[:-1])
    return "{}::{}".format(_collapse(classname), _normalize_name(names[-1]))


def _parse_time(text: str) -> Optional[_dt.datetime]:
    try:
        value = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    return value


class _Omen:
    def __init__(self, config):
        self.config = config
        self.path: Optional[Path] = None
        self.notice: Optional[str] = None
        self.error: Optional[str] = None
        self.entries: List[dict] = []
        self.expired: List[dict] = []
        self.mode_override: Optional[str] = config.getoption("omen_mode")
        self.applied: Dict[str, dict] = {}  # nodeid -> entry
        self.matched_ids = set()
        self.results: Dict[str, str] = {}  # nodeid -> real outcome

    # -- loading -------------------------------------------------------------------------------

    def locate(self) -> Path:
        config = self.config
        chosen = config.getoption("omen_quarantine") or config.getini("omen_quarantine") or os.environ.get("OMEN_QUARANTINE")
        path = Path(chosen) if chosen else Path(_DEFAULT_PATH)
        if not path.is_absolute():
            base = Path.cwd() if config.getoption("omen_quarantine") else Path(str(config.rootpath))
            path = base / path
        return path

    def load(self) -> None:
        if self.mode_override == "off":
            self.notice = "omen: quarantine off (--omen-mode off)"
            return
        self.path = self.locate()
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.notice = "omen: no quarantine file at {}; nothing quarantined".format(self.path)
            return
        except OSError as err:
            self.error = "cannot read quarantine file {}: {}".format(self.path, err)
            return
        try:
            data = json.loads(text)
        except ValueError as err:
            self.error = "quarantine file {} is not valid JSON: {}".format(self.path, err)
            return
        if not isinstance(data, dict) or "version" not in data:
            self.error = 'quarantine file {} has no "version" field'.format(self.path)
            return
        if data.get("version") != QUARANTINE_VERSION:
            self.error = "quarantine file {} has version {}; this plugin reads version {} (upgrade pytest-omen)".format(
                self.path, data.get("version"), QUARANTINE_VERSION
            )
            return
        tests = data.get("tests")
        if not isinstance(tests, list):
            self.error = 'quarantine file {}: "tests" must be a list'.format(self.path)
            return
        now = _dt.datetime.now(_dt.timezone.utc)
        for i, entry in enumerate(tests):
            if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                self.error = "quarantine file {}: entry {} has no id".format(self.path, i)
                self.entries = []
                return
            expires = _parse_time(str(entry.get("expires", "")))
            if expires is not None and expires < now:
                self.expired.append(entry)
                continue
            if entry.get("mode", "run-ignore") not in _MODES:
                entry = dict(entry, mode="run-ignore")
            self.entries.append(entry)

    # -- applying ------------------------------------------------------------------------------

    def match(self, items) -> None:
        by_selector = {}
        by_id = {}
        for entry in self.entries:
            if entry.get("selector"):
                by_selector[entry["selector"]] = entry
            by_id[_collapse(entry["id"])] = entry
        for item in items:
            entry = by_selector.get(item.nodeid) or by_id.get(omen_id(item.nodeid))
            if entry is None:
                continue
            self.applied[item.nodeid] = entry
            self.matched_ids.add(entry["id"])
            mode = self.mode_override or entry.get("mode", "run-ignore")
            reason = self.reason(entry)
            if mode == "skip":
                item.add_marker(pytest.mark.skip(reason=reason))
            elif mode == "xfail":
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
            item.user_properties.append(("omen.quarantined", mode))

    @staticmethod
    def reason(entry: dict) -> str:
        text = "quarantined by omen: {}".format(entry.get("reason", "flaky"))
        if entry.get("evidence"):
            text += " ({})".format(entry["evidence"])
        return text

    def mode_of(self, nodeid: str) -> Optional[str]:
        entry = self.applied.get(nodeid)
        if entry is None:
            return None
        return self.mode_override or entry.get("mode", "run-ignore")


_STATE_KEY = pytest.StashKey[_Omen]()


def _state(config) -> Optional[_Omen]:
    return config.stash.get(_STATE_KEY, None)


def pytest_configure(config):
    state = _Omen(config)
    state.load()
    config.stash[_STATE_KEY] = state


def pytest_report_header(config):
    state = _state(config)
    if state is None:
        return None
    if state.error:
        return ["omen: ERROR: {}; running without quarantine".format(state.error)]
    if state.notice:
        return [state.notice]
    return ["omen: {} quarantine entr{} from {}".format(len(state.entries), "y" if len(state.entries) == 1 else "ies", state.path)]


def pytest_collection_modifyitems(session, config, items):
    state = _state(config)
    if state is not None and state.entries:
        state.match(items)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    state = _state(item.config)
    if state is None:
        return
    mode = state.mode_of(item.nodeid)
    if mode is None:
        return
    report = outcome.get_result()
    if report.skipped and mode != "run-ignore":
        state.results.setdefault(item.nodeid, "skipped" if mode == "skip" else "xfailed")
        return
    if report.when == "call" or report.failed:
        real = "passed" if report.passed else ("failed" if report.when == "call" else "error")
        if report.failed or item.nodeid not in state.results:
            state.results[item.nodeid] = real
    if mode == "run-ignore" and report.failed:
        message = _first_line(report)
        _record(item, report, "omen.outcome", "failed" if report.when == "call" else "error")
        if message:
            _record(item, report, "omen.message", message[:1000])
        report.outcome = "skipped"
        report.wasxfail = "quarantined by omen: failure ignored ({})".format(message[:200] if message else "no message")
    elif mode == "run-ignore" and report.when == "call" and report.passed:
        _record(item, report, "omen.outcome", "passed")


def _record(item, report, name, value):
    pair = (name, value)
    if pair not in item.user_properties:
        item.user_properties.append(pair)
    if pair not in report.user_properties:
        report.user_properties.append(pair)


def _first_line(report) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None and getattr(crash, "message", None):
        return str(crash.message).splitlines()[0] if str(crash.message) else ""
    text = str(report.longrepr or "")
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    state = _state(config)
    if state is None:
        return
    write = terminalreporter.write_line
    if state.error:
        write("omen: ERROR: {}; nothing was quarantined".format(state.error))
        return
    for entry in state.expired:
        write("omen: expired quarantine entry no longer applied: {} (expired {})".format(entry["id"], entry.get("expires")))
    if state.applied:
        results = list(state.results.values())
        passed = results.count("passed")
        ignored = results.count("failed") + results.count("error")
        skipped = results.count("skipped")
        xfailed = results.count("xfailed")
        parts = ["{} passed".format(passed), "{} failed and {} ignored".format(ignored, "was" if ignored == 1 else "were")]
        if skipped:
            parts.append("{} skipped".format(skipped))
        if xfailed:
            parts.append("{} marked xfail".format(xfailed))
        n = len(state.applied)
        write("omen: {} quarantined test{} ({})".format(n, "" if n == 1 else "s", ", ".join(parts)))
    if config.getoption("verbose") > 0:
        for entry in state.entries:
            if entry["id"] not in state.matched_ids:
                write("omen: quarantine entry matched no collected test: {}".format(entry["id"]))
