"""Faults: processes killed in the middle of their work, and indexes damaged on disk.

- `python -m qa build` killed (SIGKILL) while it embeds, and while it writes: the previous index
  still loads, the corpus folder is as it was, and the next build finishes the job.
- The web app killed while an admin upload is being indexed: corpus and index are as before the
  upload, and the half-done upload is cleared away on the next start.
- A damaged index (truncated FAISS file, garbage manifest, damaged embeddings, a garbled CURRENT
  pointer) is named at start, by `python app.py` and by `python -m qa build`, and rebuilt; damaged
  vectors are never carried into the new index. The app binds to 127.0.0.1 and logs no client
  addresses.

(The LLM endpoint hanging, failing or returning garbage: tests/test_generation.py.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.register_assert_rewrite("fixtures_index")

from fixtures_index import copy_index  # noqa: E402
from qa.config import PROJECT_ROOT, Settings  # noqa: E402
from qa.index import CURRENT_POINTER, IndexUnavailable, build_index, current_folder, load_index  # noqa: E402
from qa.text import int_to_cn  # noqa: E402

pytest_plugins = ["fixtures_index"]

START_TIMEOUT_S = 300
ADMIN_TOKEN = "fault-test-token"
# A regulation long enough (120 articles, 360 texts with their windows and sentences) that
# embedding it takes seconds even with the int8 ONNX backend: time to kill the process in the
# middle. Not longer: each test here embeds it again after the kill (300 articles cost these two
# tests 185 s of the suite's 19 minutes on the 2-core CI machine, 2026-12-04).
RULES_NAME = "long_rules.txt"
RULES = "某某市政务服务事项办理规定\n\n某政发〔2024〕1号\n\n" + "\n\n".join(
    f"第{int_to_cn(n)}条 第{n}类事项的申请人应当在{n}个工作日内提交第{n}类材料，逾期的由窗口第{n}组告知补正。"
    for n in range(1, 121)
)


def articles_in(text: str) -> int:
    from qa.config import load_settings
    from qa.corpus import parse_text

    return len(parse_text(text, RULES_NAME, load_settings()).articles)


def corpus_listing(settings: Settings) -> dict[str, bytes]:
    """Every visible corpus file with its bytes (hidden staging files are not part of the corpus)."""
    return {p.name: p.read_bytes() for p in sorted(settings.corpus_dir.iterdir()) if not p.name.startswith(".")}


def qa_env(settings: Settings, **extra: str) -> dict[str, str]:
    return os.environ | {"QA_CORPUS_DIR": str(settings.corpus_dir), "QA_INDEX_DIR": str(settings.index_dir)} | extra


def wait_until(condition, timeout: float, process: subprocess.Popen | None = None, poll: float = 0.001) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(poll)
    return False


def start_build(settings: Settings, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "qa", "--corpus-dir", str(settings.corpus_dir), "--index-dir", str(settings.index_dir), "build"]
    return subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=os.environ)


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def staging_folders(settings: Settings) -> list[Path]:
    return [p for p in settings.index_dir.iterdir() if p.name.endswith(".partial")]


# -- `python -m qa build` killed -------------------------------------------------------------------
def test_build_killed_while_embedding_leaves_the_previous_index(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    before = load_index(settings, small_embeddings.fingerprint)
    (settings.corpus_dir / RULES_NAME).write_text(RULES, encoding="utf-8")
    corpus = corpus_listing(settings)
    log = tmp_path / "build.log"
    build = start_build(settings, log)
    try:
        assert wait_until(lambda: "embedding" in log.read_text(encoding="utf-8"), START_TIMEOUT_S, build, poll=0.02), log.read_text()
        time.sleep(0.2)  # inside the embedding of 120 articles and their windows
    finally:
        kill(build)
    assert build.returncode == -signal.SIGKILL
    assert "indexed" not in log.read_text(encoding="utf-8"), "killed before the build finished"
    after = load_index(settings, small_embeddings.fingerprint)
    assert after.folder == before.folder and after.manifest.article_ids == before.manifest.article_ids
    assert corpus_listing(settings) == corpus

    report = build_index(settings, small_embeddings, progress=False)  # the next build does the job
    assert report.articles == len(before.articles) + articles_in(RULES)
    assert len(load_index(settings, small_embeddings.fingerprint).articles) == report.articles


def test_build_killed_while_writing_leaves_an_index_that_loads(small_build, small_settings, small_embeddings, tmp_path):
    """Killed the moment the new version's folder appears (the write phase): either the previous
    index is still in use or the new one is complete; never a mix, and the leftovers go."""
    settings = copy_index(small_settings, tmp_path)
    before = load_index(settings, small_embeddings.fingerprint)
    (settings.corpus_dir / RULES_NAME).write_text(RULES, encoding="utf-8")
    corpus = corpus_listing(settings)
    build = start_build(settings, tmp_path / "build.log")
    try:
        wait_until(lambda: staging_folders(settings), START_TIMEOUT_S, build)
    finally:
        kill(build)
    loaded = load_index(settings, small_embeddings.fingerprint)
    assert len(loaded.articles) in (len(before.articles), len(before.articles) + articles_in(RULES))
    if loaded.folder == before.folder:
        assert loaded.manifest.article_ids == before.manifest.article_ids
    assert corpus_listing(settings) == corpus

    build_index(settings, small_embeddings, progress=False)
    assert not staging_folders(settings), "a killed build's staging folder is removed by the next build"
    assert not [p for p in settings.index_dir.iterdir() if p.name.startswith(f".{CURRENT_POINTER}.")]
    assert len(load_index(settings, small_embeddings.fingerprint).articles) == len(before.articles) + articles_in(RULES)


# -- damaged indexes -------------------------------------------------------------------------------
def flip_vector_bytes(folder: Path) -> None:
    """Garbage in the middle of embeddings.npy: still a valid .npy file, just wrong numbers."""
    path = folder / "embeddings.npy"
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
    path.write_bytes(bytes(data))


def test_damaged_embeddings_are_detected_and_never_reused(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    original = np.load(folder / "embeddings.npy")
    flip_vector_bytes(folder)
    assert np.load(folder / "embeddings.npy").shape == original.shape  # loads fine: only a checksum tells
    with pytest.raises(IndexUnavailable, match=r"embeddings\.npy is damaged"):
        load_index(settings, small_embeddings.fingerprint)
    report = build_index(settings, small_embeddings, progress=False)
    assert report.embedded == small_build.articles, "no vector of the damaged file was reused"
    rebuilt = np.load(current_folder(settings.index_dir) / "embeddings.npy")
    np.testing.assert_allclose(rebuilt, original, atol=1e-5)


def test_vectors_of_an_index_without_checksums_are_never_reused(small_build, small_settings, small_embeddings, tmp_path):
    """A manifest whose checksums are gone (an old index, or removed) beside zeroed vectors: the
    vectors cannot be checked, so the build embeds everything again instead of sealing them in."""
    import json

    settings = copy_index(small_settings, tmp_path)
    folder = current_folder(settings.index_dir)
    original = np.load(folder / "embeddings.npy")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest.pop("checksums")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    np.save(folder / "embeddings.npy", np.zeros_like(original))
    report = build_index(settings, small_embeddings, progress=False)
    assert report.embedded == small_build.articles
    np.testing.assert_allclose(np.load(current_folder(settings.index_dir) / "embeddings.npy"), original, atol=1e-5)


def test_a_build_waits_for_the_one_running_and_builds_the_corpus_as_it_then_is(small_build, small_settings, small_embeddings, tmp_path):
    """Another process holds the build lock while it adds a file to the corpus (as a CLI build or
    an admin upload does): a build started meanwhile waits, then includes that file."""
    from qa.index import BUILD_LOCK

    settings = copy_index(small_settings, tmp_path)
    added = settings.corpus_dir / "zz_后来的通知.txt"
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import fcntl, sys, time\n"
            f"lock = open({str(settings.index_dir / BUILD_LOCK)!r}, 'a+')\n"
            "fcntl.flock(lock, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(1.5)\n"
            f"open({str(added)!r}, 'w', encoding='utf-8').write('关于后来的通知\\n\\n第一条 后来加入的条款。\\n')\n"
        )],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        started = time.monotonic()
        build_index(settings, small_embeddings, progress=False)
        waited = time.monotonic() - started
    finally:
        holder.wait(30)
    assert waited >= 1.0
    assert added.name in load_index(settings, small_embeddings.fingerprint).manifest.files


@pytest.mark.parametrize("pointer", [b"v-does-not-exist", b"\xff\xfe\x00garbage", b"../../etc", b""])
def test_a_garbled_current_pointer_reads_as_no_index_and_is_rebuilt(pointer, small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    (settings.index_dir / CURRENT_POINTER).write_bytes(pointer)
    with pytest.raises(IndexUnavailable, match="no index"):
        load_index(settings, small_embeddings.fingerprint)
    build_index(settings, small_embeddings, progress=False)
    assert len(load_index(settings, small_embeddings.fingerprint).articles) == small_build.articles


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_cli_build_names_a_damaged_index_and_rebuilds_it(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    truncate(current_folder(settings.index_dir) / "vectors.faiss")
    result = subprocess.run(
        [sys.executable, "-m", "qa", "build"], cwd=PROJECT_ROOT, env=qa_env(settings), capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "vectors.faiss is damaged" in result.stderr and "rebuilding it" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(load_index(settings, small_embeddings.fingerprint).articles) == small_build.articles


# -- the web app ---------------------------------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_app(settings: Settings, log: Path, *args: str, **env: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), *args],  # no --host: the default is what is tested
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=open(log, "w"),
        env=qa_env(settings, QA_DATA_DIR=str(settings.index_dir.parent / "data"), **env),
    )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        try:
            return httpx.get(f"{url}/api/documents", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    if not wait_until(serving, START_TIMEOUT_S, process, poll=0.5):
        process.kill()
        pytest.fail(f"app.py did not start:\n{log.read_text(encoding='utf-8')[-3000:]}")
    return process, url


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_app_start_names_a_damaged_index_rebuilds_it_and_serves_on_loopback_only(small_build, small_settings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    damaged = current_folder(settings.index_dir)
    (damaged / "manifest.json").write_text("{not json", encoding="utf-8")
    log = tmp_path / "app.log"
    app, url = start_app(settings, log)
    try:
        port = int(url.rsplit(":", 1)[1])
        assert listening_addresses(port) == {"0100007F"}, "bound to 127.0.0.1 only"
        answer = httpx.post(f"{url}/api/ask", json={"question": "承办单位最晚几个工作日内要办结？"}, timeout=120)
        assert answer.status_code == 200 and "5个工作日" in answer.json()["answer"]
    finally:
        app.terminate()
        app.wait(timeout=60)
    output = log.read_text(encoding="utf-8")
    assert f"index in {damaged} is unreadable" in output and "rebuilding it" in output
    # Warmed up before the address is announced: the first citizen does not wait for the models.
    assert output.index("ready to answer") < output.index("政策问答 on http://")
    assert "widget may be embedded by: none" in output
    assert "Traceback" not in output
    assert "POST /api/ask" not in output and "GET /api/documents" not in output, "no access log unless configured"


def test_app_killed_during_an_upload_keeps_corpus_and_index(small_build, small_settings, small_embeddings, tmp_path):
    settings = copy_index(small_settings, tmp_path)
    before_corpus = corpus_listing(settings)
    before_index = load_index(settings, small_embeddings.fingerprint)
    app, url = start_app(settings, tmp_path / "app.log", QA_ADMIN_TOKEN=ADMIN_TOKEN)
    staged = settings.corpus_dir / f".{RULES_NAME}.uploading"

    def upload() -> None:
        try:
            httpx.post(
                f"{url}/api/admin/files",
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                files={"file": (RULES_NAME, RULES.encode("utf-8"), "text/plain")},
                timeout=300,
            )
        except httpx.HTTPError:
            pass  # the server is killed under it

    uploader = threading.Thread(target=upload, daemon=True)
    try:
        uploader.start()
        assert wait_until(staged.exists, 60, app), "the upload was staged"
        time.sleep(1.0)  # the index of the corpus with the upload is being built
    finally:
        kill(app)
    uploader.join(timeout=30)
    assert corpus_listing(settings) == before_corpus, "the corpus is as before the upload"
    after = load_index(settings, small_embeddings.fingerprint)
    assert after.folder == before_index.folder and after.manifest.article_ids == before_index.manifest.article_ids

    from qa.retrieval import HybridSearcher
    from qa.web.library import CorpusAdmin, Library

    CorpusAdmin(Library(settings, HybridSearcher(settings, embeddings=small_embeddings)))  # what the next start does
    assert not staged.exists(), "the unconfirmed upload is cleared away"
    assert corpus_listing(settings) == before_corpus


def test_app_takes_the_llm_flags_and_says_at_start_whether_the_endpoint_answers(small_build, small_settings, tmp_path):
    from tests.fake_llm import FakeLLM

    fake = FakeLLM().start()
    settings = copy_index(small_settings, tmp_path)
    log = tmp_path / "app.log"
    app, url = start_app(settings, log, "--llm-base-url", fake.base_url, "--llm-model", "fake-qwen")
    try:
        assert f"LLM: fake-qwen at {fake.base_url}" in log.read_text(encoding="utf-8")
        reply = httpx.post(f"{url}/api/ask", json={"question": "热线工单确实办不完，可以申请延期吗？"}, timeout=60).json()
        assert reply["mode"] == "llm" and fake.requests, "the flag's endpoint writes the answer"
    finally:
        app.terminate()
        app.wait(timeout=30)
        fake.stop()
