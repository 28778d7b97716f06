"""promtool checks of the shared rules, and their unit tests at both runtimes' cadence."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

import pytest
import yaml

from tests.static import rule_cadence
from tests.support import REPO

RULES = sorted((REPO / "prometheus" / "rules").glob("*.yml"))
CADENCES = rule_cadence.cadences()
RULE_TESTS = [rule_cadence.path(cadence) for cadence in CADENCES]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is installed by `make install` (Debian package prometheus)"
    return subprocess.run([binary, *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def alerts() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def test_rule_files_pass_promtool_check() -> None:
    result = promtool("check", "rules", *map(str, RULES))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULES)


def test_rules_are_tested_at_the_native_and_the_docker_cadence() -> None:
    # Read from the runtimes' own settings: 2 s natively, 5 s in Docker.
    assert sorted(c.seconds for c in CADENCES) == [2, 5]
    # No stale test file beside the generated ones, and every rule file loaded.
    assert sorted((REPO / "prometheus" / "tests").glob("*.yml")) == sorted(RULE_TESTS)
    assert sorted(rule_cadence.RULE_FILES) == sorted(path.name for path in RULES)


@pytest.mark.parametrize("cadence", CADENCES, ids=lambda c: f"{c.seconds}s")
def test_rule_test_files_are_what_rule_cadence_writes(cadence: rule_cadence.Cadence) -> None:
    assert rule_cadence.path(cadence).read_text() == rule_cadence.render(cadence), (
        "prometheus/tests is out of date: run .venv/bin/python -m tests.static.rule_cadence"
    )


def test_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", *(str(path.relative_to(REPO)) for path in RULE_TESTS))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(RULE_TESTS), result.stdout


@pytest.mark.parametrize("cadence", CADENCES, ids=lambda c: f"{c.seconds}s")
def test_every_alert_has_a_for_a_severity_and_a_silent_and_a_firing_case(
    cadence: rule_cadence.Cadence,
) -> None:
    tests = yaml.safe_load(rule_cadence.path(cadence).read_text())["tests"]
    cases = [case for test in tests for case in test.get("alert_rule_test", [])]

    assert len(alerts()) >= 11
    for alert in alerts():
        name = alert["alert"]
        assert alert.get("for"), name
        assert alert["labels"]["severity"] in {"critical", "warning", "info"}
        expected = [case["exp_alerts"] for case in cases if case["alertname"] == name]
        assert [] in expected, f"{name}: no case where it stays silent"
        assert any(expected), f"{name}: no case where it fires"
        # The `for` boundary: silent one evaluation before it fires in the same test.
        assert len(expected) >= 2, name
