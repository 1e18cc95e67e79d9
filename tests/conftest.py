"""Shared fixtures, and what keeps the suite hermetic: it reads none of the shell's QA_* settings
(removed here, before anything reads them) and writes neither the repository's index/ nor its
data/ (the seed index is a copy of the tests' own; a check at the end of the session fails the run
if either changed)."""

import contextlib
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


SEED_FIXTURE = "settings"


def pytest_collection_modifyitems(config, items):
    """With two workers, the first file that needs the seed index builds it (8-9 minutes of
    embedding on the 2-core CI machine) while the other worker, had it started on such a file
    too, would wait on the build's lock. So one file that needs it goes first, then every file
    that does not, then the others: xdist (``--dist loadfile --no-loadscope-reorder``, pytest.ini)
    hands each worker one file from the front and the next as it runs out, so the second worker
    works through the files that need no seed index while the first builds it."""
    by_file: dict[str, list] = {}
    for item in items:
        by_file.setdefault(item.nodeid.split("::")[0], []).append(item)
    needs_seed = {name: any(_uses_seed(i) for i in found) for name, found in by_file.items()}
    seeded = [name for name in by_file if needs_seed[name]]
    order = seeded[:1] + [name for name in by_file if not needs_seed[name]] + seeded[1:]
    items[:] = [item for name in order for item in by_file[name]]


def _uses_seed(item) -> bool:
    """Whether the test uses this file's ``settings`` (a module may define its own of that name)."""
    definitions = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).get(SEED_FIXTURE)
    return bool(definitions) and definitions[-1].func.__module__ == __name__


def _seed_build_threads() -> contextlib.AbstractContextManager:
    """One encoder thread for the seed build when another worker runs beside it (two threads on
    two cores embed only 1.36x as fast as one, and would take the core the other worker uses)."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) < 2:
        return contextlib.nullcontext()
    from fixtures_index import single_torch_thread

    return single_torch_thread()


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
        with _seed_build_threads():
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
