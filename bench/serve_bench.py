#!/usr/bin/env python3
"""kiln-rt serve against two peers on the same model and the same request mix: an ONNX Runtime
embedding server built the way fastembed works (tokenizers + an ORT session + numpy mean pooling
and L2 normalisation, one request at a time under a ThreadingHTTPServer) and llama.cpp's
`llama-server --embeddings` on GGUFs of the same weights; sentences/s and p50 / p99 request
latency at 1 and 2 model threads, and the servers' RSS before and after the run (the soak:
--requests 10000).

The model is MiniLM-L6-shaped (hidden 384, 6 layers, 12 heads, max 128 tokens) with random
weights and a small WordPiece vocabulary trained here (tests/serve/serve_util.py); requests carry
1-4 texts of 1-60 words, sent over --connections keep-alive connections. Engines (--engines):
  kiln        kiln-rt serve, FP32 artifact (kiln.compile of the SentenceTransformer)
  kiln-int8   the same, quantize="int8"
  ort         the fastembed-style server above (FP32)
  llama-f32   llama-server --embeddings --pooling mean on a GGUF F32 made by llama.cpp's own
  llama-q8_0  convert_hf_to_gguf.py (bench/llama_compare.py's recipe), and on its Q8_0
llama-server (bench/setup_llama.sh builds it into ~/.cache/kiln/llama.cpp-0.3.36, --llama) runs
-np SLOTS parallel sequences of the model's 128 positions each (-c = SLOTS x 128), continuous
batching, -b = -ub = 512: its embedding mode must fit each input in one micro-batch (a longer
input gets HTTP 500, probed and printed at the end), and no text of the mix passes 128 tokens
(the pool is cut to fit, for every engine, so no engine truncates). Its /v1/embeddings answers
L2-normalised vectors (embd_normalize 2, its default), as the others. Every answer must be 200
with one vector per text; the tokens each engine reports (usage) are summed and printed.

    PYTHONPATH=python KILN_BUILD_DIR=build $(scripts/setup_venv.sh | tail -1) \\
        bench/serve_bench.py [--requests 2000] [--threads 1,2] [--connections 8] \\
        [--engines kiln,kiln-int8,ort,llama-q8_0,llama-f32]
"""
import argparse
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))
import serve_util as su  # noqa: E402
import llama_compare  # noqa: E402  (bench/: GGUF conversion with llama.cpp's converter)

os.environ.setdefault("KILN_RUNTIME_LIB", str(su.BUILD / "runtime" / "libkiln_runtime.so"))


class OrtServer:
    """POST /v1/embeddings served by tokenizers + onnxruntime + numpy (fastembed's recipe)."""

    def __init__(self, onnx_path, tokenizer_json, threads, max_seq):
        import numpy as np
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx_path), opts,
                                            providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.session.get_inputs()}
        tok = Tokenizer.from_file(str(tokenizer_json))
        tok.enable_truncation(max_seq)
        tok.enable_padding()
        lock = threading.Lock()  # one session run at a time, as kiln's one worker

        def embed(texts):
            enc = tok.encode_batch(texts)
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            feed = {"input_ids": ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(ids)}
            with lock:
                hidden = self.session.run(None, {k: v for k, v in feed.items()
                                                 if k in self.names})[0]
            m = mask[:, :, None].astype(np.float32)
            v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12), int(mask.sum())

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # as kiln-rt serve (else ~40 ms per answer)

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                v, n = embed(texts)
                out = json.dumps({"object": "list", "data": [
                    {"object": "embedding", "index": i, "embedding": row.tolist()}
                    for i, row in enumerate(v)], "usage": {"prompt_tokens": n,
                                                           "total_tokens": n}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        ThreadingHTTPServer.request_queue_size = 128  # listen backlog, as kiln-rt serve
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host, self.port = "127.0.0.1", self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def client(self, key=None):
        return su.Client(self.host, self.port, key)

    def stop(self):
        self.httpd.shutdown()


class LlamaServer:
    """llama.cpp's `llama-server --embeddings` on a GGUF: mean pooling, `slots` parallel
    sequences of ctx tokens each, -t / -tb threads, loopback on a free port; waits for /health."""

    def __init__(self, binary, gguf, threads, slots, ctx, ubatch=512, timeout=300):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.host, self.port = "127.0.0.1", s.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log")
        cmd = [str(binary), "-m", str(gguf), "--embeddings", "--pooling", "mean",
               "-t", str(threads), "-tb", str(threads), "-np", str(slots), "-c", str(slots * ctx),
               "-b", str(ubatch), "-ub", str(ubatch), "--host", self.host,
               "--port", str(self.port), "--no-webui"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited {self.proc.returncode}: "
                                   + Path(self.log.name).read_text(errors="replace")[-2000:])
            try:
                c = self.client()
                status, _, _ = c.request("GET", "/health")
                c.close()
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("llama-server did not become healthy")
            time.sleep(0.2)

    def client(self, key=None):
        return su.Client(self.host, self.port, key)

    def rss_kb(self):
        return su.Server.rss_kb(self)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def fit_texts(texts, tokenizer_json, max_seq):
    """Each text cut, word by word from its end, to at most max_seq tokens (the model's
    tokenizer, special tokens included): llama-server refuses longer inputs, so no engine gets
    one."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_truncation()
    out, cut = [], 0
    for t in texts:
        words = t.split(" ")
        while len(words) > 1 and len(tok.encode(" ".join(words)).ids) > max_seq:
            words.pop()
        cut += len(words) < len(t.split(" "))
        out.append(" ".join(words))
    return out, cut


def probe_too_long(server, max_seq):
    """What llama-server answers for an input past its micro-batch and for one past a slot's
    context (kiln-rt serve truncates both)."""
    answers = []
    for words in (max_seq + 8, 600):
        c = server.client()
        status, _, body = c.post("/v1/embeddings", {"input": "hello " * words})
        c.close()
        try:
            message = json.loads(body)["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = body[:200].decode(errors="replace")
        answers.append(f"{words} words: HTTP {status} {message!r}")
    return answers


def export_onnx(st, path):
    """The Transformer of the SentenceTransformer as ONNX (token embeddings out), the way
    fastembed's models are exported (pooling left to numpy)."""
    import torch

    bert = st[0].auto_model.eval()
    ids = torch.ones(2, 16, dtype=torch.long)

    class Wrap(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state

    axes = {0: "batch", 1: "seq"}
    torch.onnx.export(Wrap(bert), (ids, torch.ones_like(ids), torch.zeros_like(ids)), str(path),
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["token_embeddings"], opset_version=17, dynamo=False,
                      dynamic_axes={"input_ids": axes, "attention_mask": axes,
                                    "token_type_ids": axes, "token_embeddings": axes})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--engines", default="kiln,kiln-int8,ort,llama-q8_0,llama-f32")
    ap.add_argument("--llama", type=Path,
                    default=Path.home() / ".cache" / "kiln" /
                    f"llama.cpp-{llama_compare.LLAMA_VERSION}",
                    help="bench/setup_llama.sh's directory (src/ and build/bin/llama-server)")
    ap.add_argument("--slots", type=int, default=16,
                    help="llama-server -np (parallel sequences); default 16: 8 connections of "
                         "1-4 texts")
    ap.add_argument("--model", choices=["minilm", "small"], default="minilm",
                    help="small: hidden 32, 2 layers, max 32 tokens (the test's model; a fast "
                         "soak: --model small --engines kiln --requests 10000)")
    a = ap.parse_args()
    engines = a.engines.split(",")
    known = {"kiln", "kiln-int8", "ort", "llama-f32", "llama-q8_0"}
    if set(engines) - known:
        ap.error(f"unknown engines {sorted(set(engines) - known)} (known: {sorted(known)})")
    server_bin = a.llama / "build" / "bin" / "llama-server"
    if any(e.startswith("llama") for e in engines) and not server_bin.exists():
        ap.error(f"{server_bin} not found (bench/setup_llama.sh builds it)")
    tmp = Path(tempfile.mkdtemp(prefix="kiln-serve-bench-"))
    try:
        run(a, engines, server_bin, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # artifacts, ONNX and GGUFs: ~190 MB a run


def run(a, engines, server_bin, tmp):
    import kiln

    shape = (dict(hidden=384, layers=6, heads=12, max_seq=128) if a.model == "minilm" else
             dict(hidden=32, layers=2, heads=2, max_seq=32))
    st = su.sentence_transformer(tmp, **shape)
    arts = {"kiln": Path(kiln.compile(st, output_dir=tmp / "art"))}
    if "kiln-int8" in engines:
        arts["kiln-int8"] = Path(kiln.compile(st, output_dir=tmp / "art-int8", quantize="int8"))
    if "ort" in engines:
        export_onnx(st, tmp / "model.onnx")
    ggufs = {e: llama_compare.convert_gguf(tmp / "bert", a.llama, tmp, e.split("-")[1])
             for e in engines if e.startswith("llama")}
    texts, cut = fit_texts(su.text_pool(500, seed=3), tmp / "art" / "tokenizer.json",
                           shape["max_seq"])
    rng = random.Random(11)
    bodies = []
    for _ in range(a.requests + 200):
        picks = [rng.choice(texts) for _ in range(rng.choice([1, 1, 2, 4]))]
        bodies.append(({"input": picks}, picks))
    sentences = sum(len(t) for _, t in bodies[200:])
    print(f"model: hidden {shape['hidden']} x {shape['layers']} layers, max "
          f"{shape['max_seq']} tokens ({cut} of the 500 pool texts cut to fit), {a.requests} "
          f"requests ({sentences} sentences, 1-4 per request) over {a.connections} connections, "
          f"after 500 warm-up requests; machine: {os.cpu_count()} cores (shared, numbers are "
          f"noisy); load average {os.getloadavg()[0]:.1f}", flush=True)
    print(f"{'engine':10} {'threads':>7} {'sent/s':>8} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'tokens':>7} {'load':>5}  RSS kB (after warm-up -> end)")
    probes = []
    for threads in [int(x) for x in a.threads.split(",")]:
        for engine in engines:
            if engine in arts:
                server = su.Server(arts[engine], "--threads", threads, "--http-threads",
                                   max(16, a.connections * 2))
            elif engine == "ort":
                server = OrtServer(tmp / "model.onnx", tmp / "art" / "tokenizer.json", threads,
                                   shape["max_seq"])
            else:
                server = LlamaServer(server_bin, ggufs[engine], threads, a.slots,
                                     shape["max_seq"])
            usage = []

            def check(sent, status, data):
                assert status == 200, data[:300]
                d = json.loads(data)
                assert len(d["data"]) == len(sent), f"{len(d['data'])} vectors, {len(sent)} texts"
                usage.append(d["usage"]["prompt_tokens"])

            try:
                # warm-up: 500 requests over 16 connections, so every HTTP thread has served
                # (their first-use memory is in the first RSS reading)
                _, _, failures = su.load(server, 500, 16, lambda i: bodies[i % 200])
                rss0 = server.rss_kb() if engine != "ort" else 0
                lat, wall, more = su.load(server, a.requests, a.connections,
                                          lambda i: bodies[200 + i], check=check)
                rss1 = server.rss_kb() if engine != "ort" else 0
                failures += more
                if engine.startswith("llama") and not probes:
                    probes = probe_too_long(server, shape["max_seq"])
            finally:
                server.stop()
            rss = f"{rss0} -> {rss1} ({(rss1 / rss0 - 1) * 100:+.1f} %)" if rss0 else "-"
            print(f"{engine:10} {threads:7d} {sentences / wall:8.1f} {a.requests / wall:7.1f} "
                  f"{su.percentile(lat, 50) * 1e3:8.1f} {su.percentile(lat, 99) * 1e3:8.1f} "
                  f"{sum(usage):7d} {os.getloadavg()[0]:5.1f}  "
                  f"{rss}" + (f"  FAILED {len(failures)}: {failures[:2]}" if failures else ""),
                  flush=True)
    for p in probes:
        print("llama-server, one input of", p)


if __name__ == "__main__":
    main()
