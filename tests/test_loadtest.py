"""The load-test command (`python -m qa.loadtest`), run briefly against the test app: a few users
for a few seconds through both channels. The full run (50 users, 60 s) is a separate command whose
figures are in the README; timing goals are in its output, not asserted here."""

from __future__ import annotations

import asyncio
import math
import os

import pytest

pytest.register_assert_rewrite("fixtures_web")

from qa.loadtest import QUESTIONS, Plan, check_loopback, parse_args, render, run  # noqa: E402

pytest_plugins = ["fixtures_web"]


def test_a_short_load_test_runs_both_channels_without_errors(web):
    plan = Plan(web.url, users=4, duration_s=3.0, max_requests=40, think_s=0.0)
    summary = asyncio.run(run(plan, os.getpid(), QUESTIONS))
    channels = summary["channels"]
    assert channels["all"]["errors"] == 0, summary["error_examples"]
    assert channels["api"]["answered"] > 0 and channels["gradio"]["answered"] > 0
    assert 0 < channels["all"]["requests"] <= 40
    assert channels["all"]["p95_s"] is not None and channels["all"]["p50_s"] <= channels["all"]["p95_s"]
    assert summary["memory"]["before_mb"] > 0 and summary["memory"]["after_mb"] > 0
    assert "p95" in render(summary)


def test_it_only_targets_this_machine_and_stays_bounded():
    assert check_loopback("http://127.0.0.1:7860/") == "http://127.0.0.1:7860"
    with pytest.raises(SystemExit, match="only this machine"):
        check_loopback("https://www.example.gov.cn")
    for bad in (["--users", "1000"], ["--duration", "3600"], ["--max-requests", "0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_a_flood_from_one_address_is_held_to_its_limit_and_reported_apart(web):
    """--flood: users from one address against an app with a rate limit; they get 429s (or the
    chat's notice) while the citizens, each their own address, are answered."""
    from fixtures_web import serve_again

    limited = serve_again(web, rate_limit_per_minute=60, rate_limit_burst=5)
    try:
        plan = Plan(limited.url, users=2, duration_s=3.0, max_requests=20, think_s=0.5, flood=4, flood_think_s=0.05)
        summary = asyncio.run(run(plan, os.getpid(), QUESTIONS))
    finally:
        limited.stop()
    flood, citizens = summary["channels"]["flood"], summary["channels"]["all"]
    assert flood["rate_limited"] > 0 and flood["errors"] == 0
    # the burst, and what refilled (1 a second) while the run lasted: its 3 s and the answers still
    # in flight at the deadline (the chat's notices count as limited)
    assert flood["answered"] <= 5 + math.ceil(summary["seconds"]) + 1
    assert citizens["rate_limited"] == 0 and citizens["answered"] > 0 and citizens["errors"] == 0
    assert "flood" in render(summary)
