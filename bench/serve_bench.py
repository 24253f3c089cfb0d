#!/usr/bin/env python3
"""kiln-rt serve against an ONNX Runtime embedding server built the way fastembed works
(tokenizers + an ORT session + numpy mean pooling and L2 normalisation, one request at a time
under a ThreadingHTTPServer), on the same model and the same request mix: sentences/s and
p50 / p99 request latency at 1 and 2 model threads, and kiln's RSS before and after the run
(the soak: --requests 10000).

The model is MiniLM-L6-shaped (hidden 384, 6 layers, 12 heads, max 128 tokens) with random
weights and a small WordPiece vocabulary trained here (tests/serve/serve_util.py); requests carry
1-4 texts of 1-60 words, sent over --connections keep-alive connections. llama.cpp's
llama-server is not compared yet (bench/setup_llama.sh builds llama.cpp for llama_compare.py; an
engine here would start its llama-server --embeddings on the same GGUF).

    PYTHONPATH=python KILN_BUILD_DIR=build $(scripts/setup_venv.sh | tail -1) \\
        bench/serve_bench.py [--requests 2000] [--threads 1,2] [--connections 8]
"""
import argparse
import json
import os
import random
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "serve"))
import serve_util as su  # noqa: E402

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
    ap.add_argument("--engines", default="kiln,ort")
    ap.add_argument("--model", choices=["minilm", "small"], default="minilm",
                    help="small: hidden 32, 2 layers, max 32 tokens (the test's model; a fast "
                         "soak: --model small --engines kiln --requests 10000)")
    a = ap.parse_args()
    import kiln

    tmp = Path(tempfile.mkdtemp(prefix="kiln-serve-bench-"))
    shape = (dict(hidden=384, layers=6, heads=12, max_seq=128) if a.model == "minilm" else
             dict(hidden=32, layers=2, heads=2, max_seq=32))
    st = su.sentence_transformer(tmp, **shape)
    art = Path(kiln.compile(st, output_dir=tmp / "art"))
    if "ort" in a.engines:
        export_onnx(st, tmp / "model.onnx")
    texts = su.text_pool(500, seed=3)
    rng = random.Random(11)
    bodies = []
    for _ in range(a.requests + 200):
        picks = [rng.choice(texts) for _ in range(rng.choice([1, 1, 2, 4]))]
        bodies.append(({"input": picks}, picks))
    sentences = sum(len(t) for _, t in bodies[200:])
    print(f"model: hidden {shape['hidden']} x {shape['layers']} layers, max "
          f"{shape['max_seq']} tokens, {a.requests} requests "
          f"({sentences} sentences, 1-4 per request) over {a.connections} connections, after 500 "
          f"warm-up requests; machine: {os.cpu_count()} cores (shared, numbers are noisy)")
    print(f"{'engine':8} {'threads':>7} {'sent/s':>8} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7}  "
          "RSS kB (after warm-up -> end)")
    for threads in [int(x) for x in a.threads.split(",")]:
        for engine in a.engines.split(","):
            if engine == "kiln":
                server = su.Server(art, "--threads", threads, "--http-threads",
                                   max(16, a.connections * 2))
            else:
                server = OrtServer(tmp / "model.onnx", tmp / "art" / "tokenizer.json", threads,
                                   shape["max_seq"])
            try:
                # warm-up: 500 requests over 16 connections, so every HTTP thread has served
                # (their first-use memory is in the first RSS reading)
                _, _, failures = su.load(server, 500, 16, lambda i: bodies[i % 200])
                rss0 = server.rss_kb() if engine == "kiln" else 0
                lat, wall, more = su.load(server, a.requests, a.connections,
                                          lambda i: bodies[200 + i])
                rss1 = server.rss_kb() if engine == "kiln" else 0
                failures += more
            finally:
                server.stop()
            rss = f"{rss0} -> {rss1} ({(rss1 / rss0 - 1) * 100:+.1f} %)" if rss0 else "-"
            print(f"{engine:8} {threads:7d} {sentences / wall:8.0f} {a.requests / wall:7.0f} "
                  f"{su.percentile(lat, 50) * 1e3:7.2f} {su.percentile(lat, 99) * 1e3:7.2f}  "
                  f"{rss}" + (f"  FAILED {len(failures)}: {failures[:2]}" if failures else ""),
                  flush=True)


if __name__ == "__main__":
    main()
