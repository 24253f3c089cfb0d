"""Helpers for kiln-rt serve's tests (tests/serve/test_serve.py) and benchmark
(bench/serve_bench.py): a small sentence-transformers model with a real WordPiece tokenizer
(trained by `tokenizers`), the server as a child process on a free loopback port, an HTTP/1.1
keep-alive client, a mixed-length text pool and a bounded load run over N connections."""
import http.client
import json
import os
import random
import re
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build"))
KILN_RT = BUILD / "tools" / "kiln-rt" / "kiln-rt"
sys.path.insert(0, str(ROOT / "tests" / "tokenizers"))

WORDS = ("the quick brown fox jumps over lazy dog hello world tokenizer embedding search model "
         "running runner unbelievable believe able token kiln board raspberry python numbers "
         "café naïve façade über straße 中文 测试 日本語 😀 🚀 42 2024 3.14 https www com").split()


def sentence_transformer(tmp, hidden=32, layers=2, heads=2, max_seq=32, seed=0):
    """A random BERT (biases and norms perturbed) + WordPiece tokenizer + mean pooling +
    Normalize, as a SentenceTransformer."""
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (Normalize, Pooling,
                                                                    Transformer)
    import test_tokenizer_json as tj

    tok, _ = tj.wordpiece(lowercase=True)
    config = transformers.BertConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=4 * hidden,
        max_position_embeddings=max(64, max_seq))
    torch.manual_seed(seed)
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():
        for p in bert.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    bert.save_pretrained(tmp / "bert")
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=max_seq)
    fast.save_pretrained(tmp / "bert")
    tr = Transformer(str(tmp / "bert"), max_seq_length=max_seq)
    pool = Pooling(tr.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[tr, pool, Normalize()], device="cpu").eval()


def text_pool(n, seed=1, max_words=60):
    """n texts of 1..max_words words (a few past the compiled maximum: truncated)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice([1, 2, 3, 5, 8, 12, 20, 30, max_words]) if i % 7 else rng.randint(1, 6)
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)))
    return out


class Server:
    """`kiln-rt serve ART --port 0 ARGS...` (or any command line ending in those), started and
    waited for ("listening on http://HOST:PORT" on stderr); stderr is kept in self.log."""

    def __init__(self, art, *args, cmd=None, env=None, timeout=120):
        base = cmd or [str(KILN_RT)]
        self.proc = subprocess.Popen(base + ["serve", str(art), "--port", "0", *map(str, args)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env)
        self.log = ""
        deadline = time.monotonic() + timeout
        buf = b""
        while b"listening on" not in buf:
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError("kiln-rt serve did not start: " + buf.decode(errors="replace")
                                   + self.proc.stderr.read().decode(errors="replace"))
            r, _, _ = select.select([self.proc.stderr], [], [], min(left, 1.0))
            if r:
                buf += os.read(self.proc.stderr.fileno(), 4096)
        self.log = buf.decode(errors="replace")
        m = re.search(r"listening on http://([^:]+):(\d+)", self.log)
        self.host, self.port = m.group(1), int(m.group(2))
        self._drain = threading.Thread(target=self._read_log, daemon=True)
        self._drain.start()

    def _read_log(self):
        for line in self.proc.stderr:
            self.log += line.decode(errors="replace")

    def rss_kb(self):
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.send_signal(sig or 15)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(timeout=5)
        return self.proc.returncode

    def client(self, key=None):
        return Client(self.host, self.port, key)


class Client:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, host, port, key=None, timeout=60):
        self.conn = http.client.HTTPConnection(host, port, timeout=timeout)
        self.key = key

    def request(self, method, path, body=None, headers=None):
        """(status, headers dict, body bytes); a dict body is sent as JSON."""
        h = dict(headers or {})
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        if self.key:
            h.setdefault("Authorization", f"Bearer {self.key}")
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data

    def post(self, path, body, **kw):
        return self.request("POST", path, body, **kw)

    def close(self):
        self.conn.close()


def load(server, requests, connections, make_body, check=None, key=None):
    """Sends `requests` POST /v1/embeddings bodies (make_body(i) -> (body, texts)) over
    `connections` keep-alive connections; check(texts, status, answer) may raise. Returns
    (latencies in s, wall seconds, failures list)."""
    latencies = [None] * requests
    failures = []
    counter = iter(range(requests))
    lock = threading.Lock()

    def worker():
        c = server.client(key)
        try:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                body, texts = make_body(i)
                t0 = time.perf_counter()
                try:
                    status, _, data = c.post("/v1/embeddings", body)
                    latencies[i] = time.perf_counter() - t0
                    if check:
                        check(texts, status, data)
                    elif status != 200:
                        raise AssertionError(f"status {status}: {data[:200]}")
                except Exception as e:  # noqa: BLE001 (collected and reported by the caller)
                    with lock:
                        failures.append(f"request {i}: {e!r}")
                    c.close()
                    c = server.client(key)
        finally:
            c.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [x for x in latencies if x is not None], time.perf_counter() - t0, failures


def percentile(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))] if v else float("nan")
