import json
from pathlib import Path

import pytest

from qa.config import PROJECT_ROOT, load_settings

DEV_SET = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"


@pytest.fixture(scope="session")
def settings():
    return load_settings()


@pytest.fixture(scope="session")
def seed_corpus(settings):
    from qa.corpus import load_corpus

    return load_corpus(settings)


@pytest.fixture(scope="session")
def dev_questions():
    if not DEV_SET.exists():
        pytest.skip(f"dev set not found at {DEV_SET}")
    return [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
