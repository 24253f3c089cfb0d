"""`kiln-rt serve` over HTTP on loopback (issue 13 item 4): a small sentence-transformers model
(random BERT, WordPiece trained by `tokenizers`, mean pooling + Normalize) compiled by
kiln.compile; the answers of /v1/embeddings and /embed against `kiln-rt embed` and
SentenceTransformer.encode, 2,000 requests over 8 connections with mixed lengths (no failure, the
same vectors, RSS flat after warm-up), every bad request's 4xx with a JSON error, 503 from a full
queue, slow and vanishing clients, the API key, /metrics, SIGTERM; and the aarch64 kiln-rt under
qemu (Cortex-A76) against the native one.

Runs in the project venv (scripts/test.sh stage 3):
    KILN_BUILD_DIR=build KILN_AARCH64_BUILD_DIR=build-aarch64 PYTHONPATH=python \\
        $(scripts/setup_venv.sh | tail -1) -m pytest -q tests/serve
"""
import base64
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("sentence_transformers")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_util as su  # noqa: E402

os.environ.setdefault("KILN_RUNTIME_LIB", str(su.BUILD / "runtime" / "libkiln_runtime.so"))
import kiln  # noqa: E402

MAX_SEQ = 32
AARCH64_BUILD = Path(os.environ.get("KILN_AARCH64_BUILD_DIR", su.ROOT / "build-aarch64"))
AARCH64_KILN_RT = AARCH64_BUILD / "tools" / "kiln-rt" / "kiln-rt"
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"
LONG = "data " * 60  # past MAX_SEQ: truncated
TEXTS = ["hello world", "The quick brown fox jumps over the lazy dog.", LONG,
         "café naïve façade über straße 中文 测试 😀 🚀", "a", "numbers 1 2 3 42 2024 3.14"]


@pytest.fixture(scope="module")
def st(tmp_path_factory):
    return su.sentence_transformer(tmp_path_factory.mktemp("st"), max_seq=MAX_SEQ)


@pytest.fixture(scope="module")
def art(st, tmp_path_factory):
    return Path(kiln.compile(st, output_dir=tmp_path_factory.mktemp("art") / "mini"))


def kiln_rt_embed(art, texts):
    """`kiln-rt embed --json`: (vectors, total tokens)."""
    cmd = [str(su.KILN_RT), "embed", str(art), "--json"]
    for t in texts:
        cmd += ["--text", t]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    return np.array(d["embeddings"], dtype=np.float32), d["tokens"]


@pytest.fixture(scope="module")
def server(art):
    s = su.Server(art, "--threads", 2, "--max-inputs", 16, "--max-input-bytes", 4096,
                  "--max-body", 65536)
    yield s
    assert s.stop() == 0, s.log


@pytest.fixture(scope="module")
def pool(art):
    """Mixed-length texts and their `kiln-rt embed` vectors (one call, default batching)."""
    texts = su.text_pool(64)
    vectors, _ = kiln_rt_embed(art, texts)
    return texts, vectors


def vectors_of(answer):
    d = json.loads(answer)
    return np.array([e["embedding"] for e in d["data"]], dtype=np.float32), d


def test_health(server):
    status, headers, body = server.client().request("GET", "/health")
    assert status == 200 and headers["content-type"] == "application/json"
    d = json.loads(body)
    assert d["status"] == "ok" and d["model"] == "mini" and d["dim"] == 32
    assert d["max_tokens"] == MAX_SEQ and d["normalized"] is True
    assert "listening on http://127.0.0.1:" in server.log  # loopback unless told otherwise


def test_openai_answers_equal_kiln_rt_embed_and_sentence_transformers(server, art, st):
    want, tokens = kiln_rt_embed(art, TEXTS)
    status, _, body = server.client().post("/v1/embeddings", {"input": TEXTS, "model": "x"})
    assert status == 200, body
    got, d = vectors_of(body)
    assert d["object"] == "list" and d["model"] == "x"
    assert [e["index"] for e in d["data"]] == list(range(len(TEXTS)))
    assert all(e["object"] == "embedding" for e in d["data"])
    assert d["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, st.encode(TEXTS, normalize_embeddings=True), atol=1e-5,
                               rtol=0)
    # one string; base64 is the float32 bytes of the same vectors
    status, _, body = server.client().post("/v1/embeddings", {"input": TEXTS[1]})
    one, d = vectors_of(body)
    assert d["model"] == "mini"
    np.testing.assert_allclose(one[0], want[1], atol=1e-6, rtol=0)
    status, _, body = server.client().post(
        "/v1/embeddings", {"input": TEXTS, "encoding_format": "base64", "dimensions": 32})
    assert status == 200, body
    b64 = [np.frombuffer(base64.b64decode(e["embedding"]), dtype="<f4")
           for e in json.loads(body)["data"]]
    np.testing.assert_array_equal(np.stack(b64), got)


def test_tei_embed(server, art):
    want, _ = kiln_rt_embed(art, TEXTS)
    c = server.client()
    status, _, body = c.post("/embed", {"inputs": TEXTS})
    assert status == 200, body
    np.testing.assert_allclose(np.array(json.loads(body), dtype=np.float32), want, atol=1e-6)
    status, _, body = c.post("/embed", {"inputs": "hello world", "truncate": True})
    np.testing.assert_allclose(np.array(json.loads(body)[0]), want[0], atol=1e-6)
    # truncate: false and a text past the maximum: 413 naming it (TEI's status and error_type),
    # decided before queueing: the model runs nothing for it; normalize: false cannot be
    before = c.request("GET", "/metrics")[2].decode()
    status, _, body = c.post("/embed", {"inputs": ["a", LONG], "truncate": False})
    assert status == 413, body
    d = json.loads(body)
    assert d["error_type"] == "Validation", d
    assert "input 1 has 62 tokens, more than the model's maximum 32" in d["error"], d
    after = c.request("GET", "/metrics")[2].decode()
    for name in ("kiln_batches_total", "kiln_texts_total", "kiln_model_runs_total"):
        assert metric(after, name) == metric(before, name), name
    status, _, body = c.post("/embed", {"inputs": ["a", TEXTS[1]], "truncate": False})
    assert status == 200, body
    np.testing.assert_allclose(np.array(json.loads(body), dtype=np.float32), want[[4, 1]],
                               atol=1e-6)
    status, _, body = c.post("/embed", {"inputs": "a", "normalize": False})
    assert status == 400 and json.loads(body)["error_type"] == "Validation", body


def test_models(server):
    """GET /v1/models in OpenAI's list format; GET /v1/models/ID the one model or a 404."""
    c = server.client()
    status, headers, body = c.request("GET", "/v1/models")
    assert status == 200 and headers["content-type"] == "application/json", body
    d = json.loads(body)
    assert d["object"] == "list" and len(d["data"]) == 1, d
    m = d["data"][0]
    assert m["id"] == "mini" and m["object"] == "model" and m["owned_by"] == "kiln", m
    assert isinstance(m["created"], int) and abs(m["created"] - time.time()) < 24 * 3600, m
    assert m["dim"] == 32 and m["max_tokens"] == MAX_SEQ and m["normalized"] is True, m
    status, _, body = c.request("GET", "/v1/models/mini")
    assert status == 200 and json.loads(body) == m, body
    status, headers, body = c.request("GET", "/v1/models/gpt-4")
    assert status == 404 and headers["content-type"] == "application/json", body
    assert "no model 'gpt-4' (this server serves 'mini')" in json.loads(body)["error"]["message"]


BAD = [  # (path, body, status, part of the message)
    ("/v1/embeddings", "{", 400, "malformed JSON"),
    ("/v1/embeddings", "[1, 2]", 400, "expected a JSON object"),
    ("/v1/embeddings", "", 400, "empty body"),
    ("/v1/embeddings", {"inputs": "a"}, 400, "missing 'input'"),
    ("/v1/embeddings", {"input": 5.5}, 400, "must be a string or a list"),
    ("/v1/embeddings", {"input": ["a", None]}, 400, "'input'[1] must be a string"),
    ("/v1/embeddings", {"input": [101, 102]}, 400, "token ids"),
    ("/v1/embeddings", {"input": ""}, 400, "empty string"),
    ("/v1/embeddings", {"input": []}, 400, "empty list"),
    ("/v1/embeddings", {"input": ["a"] * 17}, 413, "limit is 16 per request"),
    ("/v1/embeddings", {"input": "x" * 4097}, 413, "4097 bytes; the limit is 4096"),
    ("/v1/embeddings", {"input": "a", "encoding_format": "hex"}, 400, "encoding_format"),
    ("/v1/embeddings", {"input": "a", "dimensions": 16}, 400, "this model's are 32"),
    ("/v1/embeddings", {"input": "a" * 70000}, 413, "exceeds 65536 bytes (--max-body)"),
    ("/embed", {"inputs": "a", "normalize": "no"}, 400, "'normalize' must be true or false"),
    ("/embed", {"inputs": []}, 400, "empty list"),
    ("/embed", "nope", 400, "malformed JSON"),
]


@pytest.mark.parametrize("path,body,status,part", BAD)
def test_bad_requests_get_their_4xx_and_a_json_error(server, path, body, status, part):
    c = server.client()
    got, headers, data = c.post(path, body)
    assert got == status, data
    assert headers["content-type"] == "application/json"
    d = json.loads(data)
    message = d["error"] if path == "/embed" else d["error"]["message"]
    assert part in message, message
    # the server still answers on a fresh connection
    assert server.client().post("/v1/embeddings", {"input": "ok"})[0] == 200


def test_unknown_routes_and_methods(server):
    c = server.client()
    status, headers, data = c.request("GET", "/v1/nothing")
    assert status == 404 and "no endpoint GET /v1/nothing" in json.loads(data)["error"]["message"]
    status, _, data = c.request("GET", "/v1/embeddings")
    assert 400 <= status < 500 and json.loads(data)["error"]


def test_load_8_connections_2000_requests_same_answers_rss_flat(server, pool):
    """2,000 requests of 1-4 texts from the pool over 8 keep-alive connections: every answer
    200 and equal to `kiln-rt embed`'s vectors; RSS after the run within 5 % of RSS after a
    200-request warm-up (RSS is read from /proc; the bound is a ratio, not a time)."""
    texts, want = pool
    index = {t: i for i, t in enumerate(texts)}
    rng = random.Random(7)
    bodies = []
    for _ in range(2200):
        picks = [rng.randrange(len(texts)) for _ in range(rng.choice([1, 1, 2, 4]))]
        bodies.append(({"input": [texts[p] for p in picks]}, [texts[p] for p in picks]))

    def check(sent, status, data):
        assert status == 200, data
        got, _ = vectors_of(data)
        rows = [index[t] for t in sent]
        np.testing.assert_allclose(got, want[rows], atol=1e-6, rtol=0)

    # warm-up over 16 connections at once: each of the 16 HTTP threads serves one, so the
    # threads' first-use memory (stacks, httplib's thread_locals) is in RSS before rss0
    _, _, failures = su.load(server, 200, 16, lambda i: bodies[i], check)
    _, _, more = su.load(server, 300, 16, lambda i: bodies[i], check)  # allocator settles
    failures += more
    assert not failures, failures[:5]
    rss0 = server.rss_kb()
    lat, wall, failures = su.load(server, 2000, 8, lambda i: bodies[200 + i], check)
    rss1 = server.rss_kb()
    assert not failures, failures[:5]
    print(f"\nserve: 2000 requests / 8 connections in {wall:.2f} s ({2000 / wall:.0f} req/s), "
          f"p50 {su.percentile(lat, 50) * 1e3:.2f} ms, p99 {su.percentile(lat, 99) * 1e3:.2f} ms, "
          f"RSS {rss0} -> {rss1} kB")
    if "asan" not in os.environ.get("LD_PRELOAD", ""):  # ASan's quarantine grows by design
        assert rss1 <= rss0 * 1.05, (rss0, rss1)


def metric(text, name):
    m = re.search("^" + re.escape(name) + r" ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def test_metrics_move(server):
    c = server.client()
    before = c.request("GET", "/metrics")[2].decode()
    ok = 'kiln_requests_total{endpoint="/v1/embeddings",status="200"}'
    bad = 'kiln_requests_total{endpoint="/v1/embeddings",status="400"}'
    tokens = 0
    for i in range(5):
        status, _, body = c.post("/v1/embeddings", {"input": ["metrics " * (i + 1)]})
        tokens += json.loads(body)["usage"]["total_tokens"]
    c.post("/v1/embeddings", {"input": ""})
    status, headers, after = c.request("GET", "/metrics")
    after = after.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    assert metric(after, ok) == metric(before, ok) + 5
    assert metric(after, bad) == metric(before, bad) + 1
    assert metric(after, "kiln_tokens_total") == metric(before, "kiln_tokens_total") + tokens
    assert metric(after, "kiln_batches_total") >= metric(before, "kiln_batches_total") + 5
    assert "# TYPE kiln_request_duration_seconds histogram" in after
    assert re.search(r'kiln_request_duration_seconds_bucket\{endpoint="/v1/embeddings",'
                     r'le="\+Inf"\} [1-9]', after)
    assert "kiln_queue_depth 0" in after


def test_slow_and_vanishing_clients_do_not_block_others(art):
    s = su.Server(art, "--threads", 1, "--timeout", 2, "--http-threads", 4)
    try:
        body = json.dumps({"input": ["slow client"]}).encode()
        head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        slow = []
        for _ in range(2):  # two that stall mid-body
            k = socket.create_connection((s.host, s.port))
            k.sendall(head + body[:5])
            slow.append(k)
        gone = socket.create_connection((s.host, s.port))  # sends half a body, then vanishes
        gone.sendall(head + body[:10])
        gone.close()
        for _ in range(3):  # complete requests whose senders leave before the answer
            k = socket.create_connection((s.host, s.port))
            k.sendall(head + body)
            k.close()
        c = s.client()
        for i in range(20):
            status, _, data = c.post("/v1/embeddings", {"input": [f"others go on {i}"]})
            assert status == 200, data
        # the stalled ones are dropped after --timeout (2 s) of silence
        for k in slow:
            k.settimeout(30)
            data = k.recv(4096)
            assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
            k.close()
        assert s.client().request("GET", "/health")[0] == 200
    finally:
        assert s.stop() == 0, s.log


def test_full_queue_answers_503(art):
    """--max-queue 1: bursts of 12 concurrent requests of 128 long texts each; some must find
    the queue full (503, JSON error, Retry-After) and every other one is answered correctly."""
    s = su.Server(art, "--threads", 1, "--max-queue", 1, "--max-batch", 1, "--http-threads", 16)
    try:
        want, _ = kiln_rt_embed(art, [LONG])
        statuses = []
        lock = threading.Lock()

        def one():
            status, headers, data = s.client().post("/v1/embeddings", {"input": [LONG] * 128})
            with lock:
                statuses.append(status)
            if status == 503:
                assert headers.get("retry-after") == "1"
                assert "queue is full" in json.loads(data)["error"]["message"]
            else:
                assert status == 200, data
                np.testing.assert_allclose(vectors_of(data)[0], np.repeat(want, 128, 0),
                                           atol=1e-6)

        for _ in range(50):
            threads = [threading.Thread(target=one) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if 503 in statuses:
                break
        assert 503 in statuses and 200 in statuses, statuses
        assert set(statuses) <= {200, 503}
        m = s.client().request("GET", "/metrics")[2].decode()
        assert metric(m, 'kiln_requests_total{endpoint="/v1/embeddings",status="503"}') >= 1
    finally:
        assert s.stop() == 0, s.log


def test_api_key(art, tmp_path):
    (tmp_path / "key").write_text("s3cret-key\n")
    s = su.Server(art, "--api-key-file", tmp_path / "key")
    try:
        assert "(API key required)" in s.log
        status, headers, data = s.client().post("/v1/embeddings", {"input": "a"})
        assert status == 401 and headers["www-authenticate"] == "Bearer"
        assert json.loads(data)["error"]["type"] == "authentication_error"
        assert s.client(key="s3cret-kez").post("/v1/embeddings", {"input": "a"})[0] == 401
        assert s.client(key="s3cret").post("/embed", {"inputs": "a"})[0] == 401
        assert s.client().request("GET", "/metrics")[0] == 401
        assert s.client().request("GET", "/v1/models")[0] == 401
        assert s.client(key="s3cret-key").request("GET", "/v1/models")[0] == 200
        assert s.client().request("GET", "/health")[0] == 200  # liveness stays open
        assert s.client(key="s3cret-key").post("/v1/embeddings", {"input": "a"})[0] == 200
        assert s.client(key="s3cret-key").request("GET", "/metrics")[0] == 200
    finally:
        assert s.stop() == 0


def test_sigint_and_bad_starts(art, tmp_path):
    s = su.Server(art)
    assert s.client().post("/v1/embeddings", {"input": "a"})[0] == 200
    assert s.stop(sig=2) == 0 and "shutting down" in s.log
    # no tokenizer, a missing key file, a port in use: clear errors, exit 1
    (tmp_path / "empty").write_text("\n")
    out = subprocess.run([str(su.KILN_RT), "serve", str(art), "--api-key-file",
                          str(tmp_path / "empty")], capture_output=True, text=True)
    assert out.returncode == 1 and "holds no key" in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run([str(su.KILN_RT), "serve", str(art), "--port", str(port)],
                             capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in out.stderr


def unpack(bundle, into):
    subprocess.run(["tar", "-xzf", str(bundle), "-C", str(into)], check=True)
    return into / Path(bundle).name[:-len(".tar.gz")]


# Under scripts/test.sh --sanitize the runtime needs libasan, and a bundle's runtime wheel refuses
# any library beyond glibc's and libstdc++ (python/kiln/_runtime_wheel.py).
@pytest.mark.skipif("-fsanitize" in os.environ.get("KILN_EXTRA_CXXFLAGS", ""),
                    reason="no bundle of a sanitized runtime (libasan)")
def test_bundle_infer_py_embeds_and_readme_curl_works(st, art, tmp_path):
    """Item 5: kiln.compile(SentenceTransformer, bundle=...): infer.py embeds text (m.embed),
    the README's `kiln-rt serve` + curl lines run as written (on a free port)."""
    kiln.compile(st, output_dir=tmp_path / "art", bundle=tmp_path / "mini.tar.gz")
    top = unpack(tmp_path / "mini.tar.gz", tmp_path)
    out = subprocess.run([sys.executable, str(top / "infer.py"), "--text", TEXTS[0], "--text",
                          TEXTS[1], "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "2 text(s) -> embeddings [2, 32]" in out.stdout and "cosine" in out.stdout, out.stdout
    want, _ = kiln_rt_embed(art, TEXTS[:2])
    np.testing.assert_allclose(np.load(tmp_path / "out" / "embeddings.npy"), want, atol=1e-6)
    readme = (top / "README.md").read_text()
    serve = next(line for line in readme.splitlines() if line.startswith("./kiln-rt serve"))
    lines = readme[readme.index("curl -s"):].splitlines()
    end = next(i for i, line in enumerate(lines) if not line.endswith("\\"))
    curl = "\n".join(lines[:end + 1])  # the command with its continuation lines
    assert serve.startswith("./kiln-rt serve . --port 8080") and "/v1/embeddings" in curl
    s = su.Server(top, cmd=[str(top / "kiln-rt")])
    try:
        out = subprocess.run(["bash", "-c", curl.replace(":8080", f":{s.port}")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        got, _ = vectors_of(out.stdout)  # the README's texts
        np.testing.assert_allclose(got, kiln_rt_embed(art, ["a sentence", "another one"])[0],
                                   atol=1e-6)
    finally:
        assert s.stop() == 0, s.log


# --- aarch64 under qemu: the cross-built kiln-rt serve as a Pi 5 (Cortex-A76) ---------------

def have_qemu():
    return (shutil.which("qemu-aarch64") is not None and Path(AARCH64_SYSROOT).is_dir()
            and AARCH64_KILN_RT.exists())


@pytest.mark.skipif(not have_qemu(), reason="needs qemu-aarch64, the aarch64 sysroot and "
                                            "build-aarch64's kiln-rt")
def test_aarch64_serve_under_qemu_rpi5(st, art, tmp_path):
    """kiln.compile(SentenceTransformer, target="rpi5", bundle=...): the bundle's own kiln-rt
    (the board runtime: built with zig for glibc 2.17, next to its libkiln_runtime.so) serves under
    qemu as a Cortex-A76; /health and /v1/embeddings equal the native answers within 1e-5."""
    kiln.compile(st, output_dir=tmp_path / "rpi5", target="rpi5", bundle=tmp_path / "pi.tar.gz")
    top = unpack(tmp_path / "pi.tar.gz", tmp_path)
    assert "./kiln-rt serve . --port 8080" in (top / "README.md").read_text()
    env = dict(os.environ, QEMU_CPU="cortex-a76", QEMU_LD_PREFIX=AARCH64_SYSROOT)
    s = su.Server(top, "--threads", 2, cmd=["qemu-aarch64", str(top / "kiln-rt")], env=env,
                  timeout=600)
    try:
        c = s.client()
        status, _, body = c.request("GET", "/health")
        assert status == 200 and json.loads(body)["max_tokens"] == MAX_SEQ
        status, _, body = c.post("/v1/embeddings", {"input": TEXTS})
        assert status == 200, body
        native, _ = kiln_rt_embed(art, TEXTS)
        np.testing.assert_allclose(vectors_of(body)[0], native, atol=1e-5, rtol=0)
    finally:
        assert s.stop() == 0, s.log
