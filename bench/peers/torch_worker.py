"""Times PyTorch FP32 (Debian python3-torch + OpenBLAS) on the benchmark model, or with --int8
its dynamic INT8 (torch.ao.quantization.quantize_dynamic of nn.Linear, onednn engine).
argv: STATE_DICT_PREFIX NPZ_INPUTS THREADS RUNS WARMUP [--save OUT.npy] [--int8]"""
import json
import sys

import numpy as np
import torch

from common import report, time_runs
from kiln.models.bert import BertConfig, BertModel

prefix, npz, threads, runs, warmup = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
torch.set_num_threads(threads)
cfg = BertConfig(**json.load(open(prefix + "_config.json")))
model = BertModel(cfg)
model.load_state_dict(torch.load(prefix + ".pt"))
model.eval()
if "--int8" in sys.argv:
    torch.backends.quantized.engine = "onednn"
    model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
feed = np.load(npz)
args = [torch.from_numpy(feed[n]) for n in ("input_ids", "attention_mask", "token_type_ids")]
with torch.no_grad():
    out = model(*args)[0].numpy()
    times = time_runs(lambda: model(*args), runs, warmup)
report(times, out, threads=threads, version=torch.__version__)
