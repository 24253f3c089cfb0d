"""Times PyTorch FP32 (Debian python3-torch + OpenBLAS) on the benchmark model.
argv: STATE_DICT_PREFIX NPZ_INPUTS THREADS RUNS WARMUP [--save OUT.npy]"""
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
feed = np.load(npz)
args = [torch.from_numpy(feed[n]) for n in ("input_ids", "attention_mask", "token_type_ids")]
with torch.no_grad():
    out = model(*args)[0].numpy()
    times = time_runs(lambda: model(*args), runs, warmup)
report(times, out, threads=threads, version=torch.__version__)
