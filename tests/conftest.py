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
    """The bundled corpus with an index of the tests' own, built once per run: a copy of the
    repository's index/ when it has one (then brought up to date, usually instantly), else built
    there. With pytest-xdist the workers share it (the first builds under the index's build lock,
    the others wait for it, as two builds of one index do); each worker keeps a data/ folder of its own."""
    worker = tmp_path_factory.mktemp("seed")
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's base folder, above each worker's own
    index_dir = shared / "seed-index"
    seeded = load_settings(index_dir=index_dir, data_dir=worker / "data")
    from qa.index import build_index, build_lock

    # the index's own build lock: the first worker copies and builds, the other waits for it
    with build_lock(seeded):
        if not (index_dir / "CURRENT").exists() and (REPOSITORY.index_dir / "CURRENT").exists():
            shutil.copytree(REPOSITORY.index_dir, index_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".build.lock", ".*.partial"))
        build_index(seeded, progress=False)  # re-enters the lock this thread holds
    return seeded


@pytest.fixture(scope="session")
def seed_corpus(settings):
    from qa.corpus import load_corpus

    return load_corpus(settings)


@pytest.fixture(scope="session")
def dev_questions():
    if not DEV_SET.exists():
        pytest.skip(f"dev set not found at {DEV_SET}")
    return [json.loads(line) for line in DEV_SET.read_text(encoding="utf-8").splitlines() if line.strip()]
