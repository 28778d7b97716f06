"""promtool checks of the shared rules, and their unit tests."""

from __future__ import annotations

import shutil
import subprocess

from tests.support import REPO

RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
# Every file of promtool unit tests; each names the rule files it loads.
RULE_TESTS = sorted((REPO / "prometheus" / "tests").glob("*.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is installed by `make install` (Debian package prometheus)"
    return subprocess.run([binary, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_rule_files_pass_promtool_check() -> None:
    result = promtool("check", "rules", *map(str, RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULES)


def test_rule_unit_tests_pass() -> None:
    assert len(RULE_TESTS) >= 2
    result = promtool("test", "rules", *(str(path.relative_to(REPO)) for path in RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


def test_every_alert_has_a_for_a_severity_and_a_unit_test() -> None:
    import yaml

    tested = "\n".join(path.read_text() for path in RULE_TESTS)
    alerts = [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]

    assert len(alerts) >= 7
    for alert in alerts:
        assert alert.get("for"), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        assert f"alertname: {alert['alert']}" in tested, f"{alert['alert']} has no promtool test"
