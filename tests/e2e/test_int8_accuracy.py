"""INT8 keeps task accuracy: a small BERT classifier (kiln.models.bert BertModel, 2 layers, hidden
64, linear head on the pooler) trained inside the test on a synthetic task to >= 95% held-out
accuracy, exported with its logits, compiled FP32 and --quantize int8; INT8 accuracy on the
held-out set must be within 1 point of FP32.

Task (majority of a token class): after [CLS], 15 tokens drawn from class A (ids 2..20) or class
B (ids 21..39); label 1 when class A tokens are the majority. 15 is odd, so there are no ties, and
the closest cases (8 vs 7) are where quantization noise would show first."""
import time

import numpy as np
import torch
from torch import nn

from harness import compile_model, run_model
from kiln.models.bert import BertConfig, BertModel

CFG = BertConfig(vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=128, max_position_embeddings=16)
SEQ = 16
CLS = 1


class Classifier(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.bert = BertModel(cfg)
        self.bert.init_weights("hf")
        self.head = nn.Linear(cfg.hidden_size, 2)

    def forward(self, input_ids, attention_mask):
        return self.head(self.bert(input_ids, attention_mask)[1])


def make_data(n, rng):
    is_a = rng.random_sample((n, SEQ - 1)) < rng.uniform(0.2, 0.8, size=(n, 1))
    a_ids, b_ids = rng.randint(2, 21, size=(n, SEQ - 1)), rng.randint(21, 40, size=(n, SEQ - 1))
    ids = np.where(is_a, a_ids, b_ids)
    ids = np.concatenate([np.full((n, 1), CLS), ids], axis=1).astype(np.int64)
    labels = (is_a.sum(axis=1) > (SEQ - 1) // 2).astype(np.int64)
    return ids, np.ones_like(ids), labels


def train(budget_s=50.0):
    torch.manual_seed(0)
    torch.set_num_threads(1)  # tiny model: one thread is faster than two on a shared machine
    rng = np.random.RandomState(0)
    model = Classifier(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    val_ids, val_mask, val_y = make_data(1000, np.random.RandomState(1))
    t0, step, acc = time.perf_counter(), 0, 0.0
    while time.perf_counter() - t0 < budget_s:
        model.train()
        ids, mask, y = make_data(128, rng)
        loss = nn.functional.cross_entropy(model(torch.from_numpy(ids), torch.from_numpy(mask)),
                                           torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 20 == 0:
            model.eval()
            with torch.no_grad():
                pred = model(torch.from_numpy(val_ids), torch.from_numpy(val_mask)).argmax(-1)
            acc = float((pred.numpy() == val_y).mean())
            if acc >= 0.975:
                break
    print(f"trained {step} steps in {time.perf_counter() - t0:.1f} s, "
          f"validation accuracy {acc:.3f}")
    return model.eval()


def test_int8_accuracy_within_one_point_of_fp32(tmp_path):
    model = train()
    onnx_path = tmp_path / "classifier.onnx"
    ids, mask, labels = make_data(2000, np.random.RandomState(2))  # held out
    with torch.no_grad():
        torch.onnx.export(model, (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])),
                          onnx_path, opset_version=14, input_names=["input_ids", "attention_mask"],
                          output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                                        "attention_mask": {0: "batch", 1: "sequence"},
                                        "logits": {0: "batch"}})
        torch_acc = float((model(torch.from_numpy(ids), torch.from_numpy(mask)).argmax(-1).numpy()
                           == labels).mean())
    accs = {}
    for mode, extra in [("fp32", []), ("int8", ["--quantize", "int8"])]:
        art = compile_model(onnx_path, tmp_path / mode, "native", *extra)
        logits = run_model(art, {"input_ids": ids, "attention_mask": mask}, tmp_path / f"r{mode}")
        accs[mode] = float((logits["logits"].argmax(-1) == labels).mean())
    print(f"held-out accuracy (2000 examples): PyTorch {100 * torch_acc:.2f}%, "
          f"kiln FP32 {100 * accs['fp32']:.2f}%, kiln INT8 {100 * accs['int8']:.2f}%")
    assert accs["fp32"] >= 0.95
    assert abs(accs["int8"] - accs["fp32"]) <= 0.01
