"""Shared fixtures, and what keeps the suite hermetic: it reads none of the shell's QA_* settings
(removed here, before anything reads them) and writes neither the repository's index/ nor its
data/ (the seed index is a copy of the tests' own; a check at the end of the session fails the run
if either changed)."""

import json
import os
import shutil

import pytest

from qa.config import PROJECT_ROOT, load_settings

DEV_SET = PROJECT_ROOT.parent / "shared" / "eval" / "dev.jsonl"
for _name in [name for name in os.environ if name.startswith("QA_")]:
    del os.environ[_name]
REPOSITORY = load_settings()  # the defaults: the repository's own corpus/, index/ and data/
GUARDED = (REPOSITORY.index_dir, REPOSITORY.data_dir)


def snapshot() -> dict[str, tuple[int, int]]:
    """Every file under the guarded folders, with its size and modification time."""
    found = {}
    for folder in GUARDED:
        for path in folder.rglob("*") if folder.exists() else ():
            if path.is_file():
                stat = path.stat()
                found[str(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def pytest_sessionstart(session):
    session.config._repository_files = snapshot()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "_repository_files", None)
    if before is None:
        return
    after = snapshot()
    changed = sorted(set(before) ^ set(after) | {p for p in set(before) & set(after) if before[p] != after[p]})
    if changed:
        print(f"\nthe tests changed the repository's index/ or data/: {changed[:5]}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def settings(tmp_path_factory):
    """The bundled corpus with an index of the tests' own: a copy of the repository's index/ when
    it has one (then brought up to date, usually instantly, by whoever builds), else built there."""
    root = tmp_path_factory.mktemp("seed")
    if (REPOSITORY.index_dir / "CURRENT").exists():
        shutil.copytree(REPOSITORY.index_dir, root / "index", ignore=shutil.ignore_patterns(".build.lock", ".*.partial"))
    return load_settings(index_dir=root / "index", data_dir=root / "data")


@pytest.fixture(scope="session")
def seed_corpus(settings):
    from qa.corpus import load_corpus

    return load_corpus(settings)


@pytest.fixture(scope="session")
def dev_questions():
    if not DEV_SET.exists():
        pytest.skip(f"dev set not found at {DEV_SET}")
    return [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
