#!/usr/bin/env python3
"""Collect real failure text: run real tools and test suites on this machine with faults
injected, and write what they print to `real.jsonl`, one failure per line, with its cause's
group and category labelled by hand (here: by the fault the run injected, which the person who
wrote the fault knows).

Run from anywhere: `python3 tests/corpus/failures/collect.py` (needs python3 with pytest,
node, rustc, gcc, java, curl, bash; as root, no network). Values vary between instances of
one cause (ports, names, sizes, indices, paths), as they do between CI runs.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "real.jsonl"
N = 6  # instances per cause

records = []


def add(tool, fault, group, category, *, message=None, kind=None, trace=None, output=None):
    records.append(
        {
            "id": len(records),
            "tool": tool,
            "fault": fault,
            "group": group,
            "category": category,
            "kind": kind,
            "message": message,
            "trace": trace,
            "output": output,
        }
    )


def run(cmd, cwd, env=None, shell=False, timeout=60):
    p = subprocess.run(
        cmd, cwd=cwd, env=env, shell=shell, capture_output=True, text=True, timeout=timeout
    )
    return p.returncode, p.stdout, p.stderr


def closed_port(i):
    return 5900 + 37 * i


PYTEST_SUITE = '''
import os, socket, subprocess, sys

I = int(os.environ["OMEN_I"])

def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=2)

def test_orders_db():
    connect({port})

def test_missing_module():
    __import__("omen_missing_mod_%d" % I)

def add(a, b):
    return a + b + (1 if a > 3 else 0)

def test_add():
    assert add(I + 4, 2) == I + 6

def test_status():
    response = {{"code": 200 + I, "body": "ok"}}
    assert "status" in response, response

def test_export_timeout():
    subprocess.run(["sleep", "5"], timeout=0.1 + I / 100)

def test_read_secret():
    # As nobody: the secret is root's.
    os.seteuid(65534)
    try:
        with open(os.environ["OMEN_SECRET"]) as f:
            f.read()
    finally:
        os.seteuid(0)

def test_big_buffer():
    data = bytearray(1_500_000_000 + I * 1_000_003)
    assert data

def test_resolve():
    socket.getaddrinfo("db-%d.omen-corpus.invalid" % I, 5432)

class User:
    id = 1

def find(name):
    return None if name.startswith("ghost") else User()

def test_user_id():
    assert find("ghost%d" % I).id == 1

def test_ratio():
    total = I - I
    assert 10 / total
'''

PYTEST_CAUSES = {
    "test_orders_db": ("closed port", "infrastructure"),
    "test_missing_module": ("missing module", "dependency"),
    "test_add": ("assertion", "test"),
    "test_status": ("assertion", "test"),
    "test_export_timeout": ("timeout", "infrastructure"),
    "test_read_secret": ("permission denied", "security"),
    "test_big_buffer": ("out of memory", "infrastructure"),
    "test_resolve": ("dns", "infrastructure"),
    "test_user_id": ("none dereference", "application"),
    "test_ratio": ("uncaught exception", "application"),
}


def pytest_runs(tmp):
    secret_dir = pathlib.Path(tmp) / "secrets"
    secret_dir.mkdir()
    for i in range(N):
        d = pathlib.Path(tmp) / f"py{i}"
        d.mkdir()
        (d / "test_app.py").write_text(PYTEST_SUITE.format(port=closed_port(i)))
        secret = secret_dir / f"token-{i}.txt"
        secret.write_text("s")
        os.chmod(secret, 0o600)
        os.chmod(secret_dir, 0o700)
        env = dict(os.environ, OMEN_I=str(i), OMEN_SECRET=str(secret), PYTHONDONTWRITEBYTECODE="1")
        junit = d / "junit.xml"
        # With 1 GiB of address space (the buffer is larger).
        cmd = (
            f"ulimit -v 1048576; "
            f"{sys.executable} -m pytest -q -p no:cacheprovider --junitxml={junit} test_app.py"
        )
        code, out, err = run(cmd, cwd=d, env=env, shell=True, timeout=120)
        if not junit.exists():
            sys.exit(f"pytest wrote no report (exit {code}):\n{out}\n{err}")
        for case in ET.parse(junit).getroot().iter("testcase"):
            name = case.get("name")
            f = case.find("failure")
            if f is None:
                f = case.find("error")
            if f is None:
                continue
            fault, category = PYTEST_CAUSES[name]
            add(
                "pytest",
                fault,
                f"pytest:{name}",
                category,
                kind=f.get("type") or None,
                message=f.get("message"),
                trace=f.text,
            )


def tool_runs(tmp):
    for i in range(N):
        # Each instance in its own checkout: the same file names, other values (a CI run's).
        t = pathlib.Path(tmp) / f"run{i}" / "src"
        t.mkdir(parents=True)
        port = closed_port(i) + 3
        _, _, err = run(["curl", "-sS", f"http://127.0.0.1:{port}/health"], t)
        add("curl", "closed port", "curl:refused", "infrastructure", output=err)
        _, _, err = run(["curl", "-sS", f"http://svc-{i}.omen-corpus.invalid/"], t)
        add("curl", "dns", "curl:resolve", "infrastructure", output=err)
        _, _, err = run(["node", "-e", f"require('omen-missing-pkg-{i}')"], t)
        add("node", "missing module", "node:require", "dependency", output=err)
        js = (
            "const net = require('net');"
            f"net.connect({port}, '127.0.0.1').on('error', e => {{ console.error(e.stack); process.exit(1); }});"
        )
        _, _, err = run(["node", "-e", js], t)
        add("node", "closed port", "node:refused", "infrastructure", output=err)
        _, _, err = run(
            ["node", "-e", f"const cfg = undefined; console.log(cfg.retries{i});"], t
        )
        add("node", "none dereference", "node:undefined", "application", output=err)
        _, _, err = run(["bash", "-c", f"omen-tool-{i} --version"], t)
        add("bash", "command not found", "bash:not-found", "dependency", output=err)
        # A Rust program that panics, compiled with rustc.
        src = t / "panic.rs"
        src.write_text(
            "fn main() {\n    let v = vec![1, 2, 3];\n"
            f"    let i = std::env::args().count() + {i + 9};\n"
            '    println!("{}", v[i]);\n}\n'
        )
        code, _, err = run(["rustc", "-O", "-o", str(t / "panic"), str(src)], t)
        if code == 0:
            _, _, err = run([str(t / "panic")], t, env=dict(os.environ, RUST_BACKTRACE="0"))
        add("rust", "panic", "rust:index", "application", output=err)
        # Out of memory in Rust: a large allocation under a 1 GiB address-space limit.
        src = t / "oom.rs"
        src.write_text(
            "fn main() {\n"
            f"    let n: usize = 1_500_000_000 + {i} * 4096 + std::env::args().count();\n"
            "    let v = vec![7u8; n];\n    println!(\"{}\", v[n - 1]);\n}\n"
        )
        code, _, err = run(["rustc", "-o", str(t / "oom"), str(src)], t)
        if code == 0:
            _, _, err = run(f"ulimit -v 1048576; {t / 'oom'}", t, shell=True)
        add("rust", "out of memory", "rust:alloc", "infrastructure", output=err)
        # A compile error (rustc) and one in C (gcc).
        src = t / "bad.rs"
        src.write_text(f"fn main() {{\n    let total = count_{i} + 1;\n    println!(\"{{total}}\");\n}}\n")
        _, _, err = run(["rustc", "--color", "never", "-o", str(t / "bad"), str(src)], t)
        add("rust", "compile error", "rustc:E0425", "build", output=err)
        src = t / "bad.c"
        src.write_text(f"int main(void) {{\n    return width_{i} * 2;\n}}\n")
        _, _, err = run(["gcc", "-fdiagnostics-color=never", "-o", str(t / "badc"), str(src)], t)
        add("gcc", "compile error", "gcc:undeclared", "build", output=err)
        # A Java NullPointerException (single-file source launch).
        src = t / "Npe.java"
        src.write_text(
            "public class Npe {\n  static String name(int k) { return k > 0 ? null : \"x\"; }\n"
            f"  public static void main(String[] a) {{ System.out.println(name({i + 1}).length()); }}\n}}\n"
        )
        _, _, err = run(["java", str(src)], t)
        add("java", "none dereference", "java:npe", "application", output=err)
        # Permission denied for a shell script without the execute bit.
        script = t / f"deploy-{i}.sh"
        script.write_text("echo deploy\n")
        os.chmod(script, 0o644)
        _, _, err = run(["bash", "-c", str(script)], t)
        add("bash", "permission denied", "bash:not-executable", "security", output=err)


# Failures of the committed JUnit corpus (tests/corpus/junit, its licences there), labelled by
# hand: (file, test case, which failure or error of the cases of that name, group, category). Toy messages that name
# no cause ("first failure", "it broke", "failed") and an ambiguous one are left out.
JUNIT_LABELS = [
    ('action-junit-report/catch2/report.xml', 'is constant evaluated', 0, 'catch2-require', 'test'),
    ('action-junit-report/cunit/testFailure.xml', 'loadFromXMLString_When_Should2Test', 0, 'cunit-load', 'test'),
    ('action-junit-report/issues/testDisabled.xml', 'factorial_of_value_from_fixture', 0, 'doctest-factorial-eq', 'test'),
    ('action-junit-report/issues/testDisabled.xml', 'factorial_of_value_from_fixture[0]', 0, 'doctest-condition-97', 'test'),
    ('action-junit-report/issues/testDisabled.xml', 'positive_arguments_must_produce_expected_result', 0, 'doctest-std-exception', 'application'),
    ('action-junit-report/issues/testDisabled.xml', 'positive_arguments_must_produce_expected_result[2]', 0, 'doctest-condition-73', 'test'),
    ('action-junit-report/issues/testDisabled.xml', 'test_which_fails_check_eq_with_custom_message', 0, 'doctest-eq-message', 'test'),
    ('action-junit-report/issues/testDisabled.xml', 'test_which_throws_unknown_exception', 0, 'doctest-unknown-exception', 'application'),
    ('action-junit-report/issues/testFailedDisabled.xml', 'testSmemArithmetic', 0, 'smem-boolean', 'test'),
    ('action-junit-report/marathon_tests/com.mikepenz.DummyUtilTest#test_01_dummy.xml', 'test_01_dummy', 0, 'android-content-provider', 'application'),
    ('action-junit-report/multiple/test_11.xml', 'Metadata Test', 0, 'metadata-assert', 'test'),
    ('action-junit-report/multiple_failures/test_multiple_errors.xml', 'testWithMultipleErrors', 0, 'multi-timeout', 'infrastructure'),
    ('action-junit-report/multiple_failures/test_multiple_errors.xml', 'testWithMultipleErrors', 1, 'multi-timeout', 'infrastructure'),
    ('action-junit-report/multiple_failures/test_multiple_errors.xml', 'testWithFailureAndError', 0, 'multi-assertion-failed', 'test'),
    ('action-junit-report/multiple_failures/test_multiple_errors.xml', 'testWithFailureAndError', 1, 'multi-typeerror', 'application'),
    ('action-junit-report/multiple_failures/test_multiple_failures.xml', 'testWithMultipleFailures', 0, 'multi-assertions', 'test'),
    ('action-junit-report/multiple_failures/test_multiple_failures.xml', 'testWithMultipleFailures', 1, 'multi-assertions', 'test'),
    ('action-junit-report/multiple_failures/test_multiple_failures.xml', 'testWithSingleFailure', 0, 'single-failure', 'test'),
    ('action-junit-report/nextest/basic.xml', 'test_failure', 0, 'nextest-assert-eq', 'test'),
    ('action-junit-report/python/report.xml', 'test_which_fails', 0, 'py-assert-xyz', 'test'),
    ('action-junit-report/python/report.xml', 'test_with_error', 0, 'py-dict-attr', 'application'),
    ('action-junit-report/python/report_flaky.xml', 'test_which_fails', 0, 'py-assert-xyz', 'test'),
    ('action-junit-report/python/report_flaky.xml', 'test_with_error', 0, 'py-dict-attr', 'application'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldNotContainInternationalizedHostNames', 0, 'email-invalid', 'application'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldBeStricterThanRfc2821', 0, 'email-invalid', 'application'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldBeStricterThanRfc2822', 0, 'email-should-throw', 'test'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldNotBeBlank', 0, 'email-blank', 'application'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldNotContainLocalHosts', 0, 'email-invalid', 'application'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldNotMissComponents', 0, 'email-should-throw', 'test'),
    ('action-junit-report/tests/email/target/surefire-reports/TEST-action.surefire.report.email.EmailAddressTest.xml', 'shouldNotAllowDotsInWeirdPlaces', 0, 'email-invalid', 'application'),
    ('action-junit-report/tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.CalcUtilsTest.xml', 'test error handling', 0, 'calc-exception-type', 'test'),
    ('action-junit-report/tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.CalcUtilsTest.xml', 'test scale', 0, 'calc-scale', 'test'),
    ('action-junit-report/tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.StringUtilsTest.xml', 'require_fail', 0, 'string-require-fail', 'test'),
    ('action-junit-report/tests/utils/target/surefire-reports/TEST-action.surefire.report.calc.StringUtilsTest.xml', 'require', 0, 'string-require', 'test'),
    ('action-junit-report/xunit/report.xml', 'test_my_sum_fail', 0, 'xunit-sum', 'test'),
    ('action-junit-report/xunit/report_fl_on_f.xml', 'test_my_sum_fail', 0, 'xunit-sum', 'test'),
    ('test-reporter/external/java/TEST-org.apache.pulsar.AddMissingPatchVersionTest.xml', 'testVersionStrings', 0, 'pulsar-version', 'test'),
    ('test-reporter/external/java/empty_failures.xml', 'test_other_case', 0, 'unittest-assert-false', 'test'),
    ('test-reporter/external/java/junit4-basic.xml', 'testCase9', 0, 'basic-assertion', 'test'),
    ('test-reporter/external/java/junit4-complete.xml', 'testCase5', 0, 'junit4-expected', 'test'),
    ('test-reporter/external/java/junit4-complete.xml', 'testCase6', 0, 'junit4-division', 'application'),
    ('test-reporter/external/java/pulsar-test-report.xml', 'testVersionStrings', 0, 'pulsar-version', 'test'),
    ('test-reporter/external/jest/jest-test-results.xml', 'gets changed files for hg', 1, 'jest-tomatch', 'test'),
    ('test-reporter/external/phpunit/junit-basic.xml', 'testCase9', 0, 'basic-assertion', 'test'),
    ('test-reporter/external/phpunit/phpcheckstyle-phpunit.xml', 'testOther', 0, 'phpcheckstyle-other', 'test'),
    ('test-reporter/external/phpunit/phpcheckstyle-phpunit.xml', 'testException', 0, 'phpcheckstyle-exception', 'test'),
    ('test-reporter/jest-junit.xml', 'Failing test', 0, 'jest-truthy', 'test'),
    ('test-reporter/jest-junit.xml', 'Exception in target unit', 0, 'jest-some-error', 'application'),
    ('test-reporter/jest-junit.xml', 'Exception in test', 0, 'jest-some-error', 'application'),
    ('test-reporter/jest-junit.xml', 'Timeout test', 0, 'jest-timeout', 'infrastructure'),
    ('test-reporter/nette-tester/tester-v1.7-report.xml', 'tests/Runner/Runner.multiple-fails.phpt', 0, 'nette-match', 'test'),
    ('test-reporter/phpunit/phpunit-paths.xml', 'testFailure', 0, 'phpunit-boom', 'application'),
    ('test-reporter/phpunit/phpunit.xml', 'targeting-traits-with-coversclass-attribute-is-deprecated.phpt', 0, 'phpt-format', 'test'),
    ('test-reporter/phpunit/phpunit.xml', 'targeting-traits-with-usesclass-attribute-is-deprecated.phpt', 0, 'phpt-format', 'test'),
    ('test-reporter/python-xunit-pytest.xml', 'test_always_fail', 0, 'pytest-assert-false', 'test'),
    ('test-reporter/python-xunit-pytest.xml', 'test_error', 0, 'pytest-exception', 'application'),
    ('test-reporter/python-xunit-unittest.xml', 'test_always_fail', 0, 'unittest-failed', 'test'),
    ('test-reporter/python-xunit-unittest.xml', 'test_error', 0, 'unittest-error', 'application'),
    ('test-reporter/test-errors/jest/jest-test-results.xml', 'libs/foo.spec.ts', 0, 'jest-tsconfig', 'build'),
    ('test-reporter/test-errors/jest/jest-test-results.xml', 'libs/bar.spec.ts', 0, 'jest-tsconfig', 'build'),
]


def junit_corpus():
    root = HERE.parent / "junit"
    for path, name, k, group, category in JUNIT_LABELS:
        found = [
            f
            for c in ET.parse(root / path).getroot().iter("testcase")
            if c.get("name") == name
            for f in c.findall("failure") + c.findall("error")
        ]
        if k >= len(found):
            sys.exit(f"{path}: test case {name!r} has no failure {k}")
        f = found[k]
        add(
            f"junit-corpus:{path}",
            category,
            f"junit:{group}",
            category,
            kind=f.get("type") or None,
            message=f.get("message"),
            trace=f.text,
        )


def main():
    if os.geteuid() != 0:
        sys.exit("collect.py runs as root: it reads a secret as nobody (seteuid) to be refused")
    for tool in ["node", "rustc", "gcc", "java", "curl", "bash"]:
        if shutil.which(tool) is None:
            sys.exit(f"collect.py needs {tool}")
    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        pytest_runs(tmp)
        tool_runs(tmp)
    junit_corpus()
    with OUT.open("w") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{len(records)} failures written to {OUT}")


if __name__ == "__main__":
    main()
