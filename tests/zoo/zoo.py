"""The model zoo of issue 11: transformers' own encoder classes, small and with random weights.

Every model is built from a small config (hidden 32-64, 2 layers, vocab <= 1000) with a fixed seed,
never from the hub. Needs the zoo venv (scripts/setup_venv.sh): torch 2.x, transformers 5.x,
sentence-transformers, onnx, onnxscript.

    import zoo
    for name in zoo.MODELS:
        case = zoo.build(name)                    # ZooModel: module, input names, config
        feeds = zoo.example_inputs(case, batch=3, seq=7)   # int64 numpy, padding in the mask
        for exporter in zoo.EXPORTERS:            # "dynamo", "torchscript14", "torchscript17"
            zoo.export(case, exporter, f"/tmp/zoo/{name}.{exporter}.onnx")
        ref = zoo.run_torch(case, feeds)          # dict output name -> numpy

Graph inputs are input_ids, attention_mask and, for the models whose tokenizer returns them,
token_type_ids (BERT, ALBERT, ELECTRA, the sentence encoder over BERT), all int64 [batch, seq] with
dynamic batch and sequence axes. Outputs: last_hidden_state (+ pooler_output where the model has a
pooler), logits for the classifier, sentence_embedding for the sentence encoder.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from typing import Callable

import numpy as np
import torch

SEED = 1234
VOCAB = 1000
MAX_POS = 128  # max_position_embeddings of every zoo model (the "compiled max" of the tests)
PAD_ID = 0     # pad token id of every zoo model (RoBERTa's family: 1, see _pad_id)

EXPORTERS = ("dynamo", "torchscript14", "torchscript17")


@dataclasses.dataclass
class ZooModel:
    name: str
    module: torch.nn.Module          # wrapper: positional forward over input_names, tuple outputs
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    hf_model: torch.nn.Module        # the transformers (or sentence-transformers) object itself
    pad_id: int = PAD_ID


class _Wrapper(torch.nn.Module):
    """Keyword forward of a transformers model as a positional one with plain tensor outputs."""

    def __init__(self, model: torch.nn.Module, input_names, output_keys):
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.output_keys = tuple(output_keys)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kw = dict(input_ids=input_ids, attention_mask=attention_mask)
        if token_type_ids is not None:
            kw["token_type_ids"] = token_type_ids
        out = self.model(**kw)
        return tuple(out[k] for k in self.output_keys)


def _seed():
    torch.manual_seed(SEED)
    np.random.seed(SEED)


# small configs -----------------------------------------------------------------------------------

def _bert_kwargs(**kw):
    base = dict(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                intermediate_size=128, max_position_embeddings=MAX_POS, type_vocab_size=2,
                pad_token_id=PAD_ID, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    base.update(kw)
    return base


def _bert():
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(**_bert_kwargs())), ("input_ids", "attention_mask", "token_type_ids"), \
        ("last_hidden_state", "pooler_output")


def _bert_cls():
    from transformers import BertConfig, BertForSequenceClassification
    m = BertForSequenceClassification(BertConfig(**_bert_kwargs(num_labels=3)))
    return m, ("input_ids", "attention_mask", "token_type_ids"), ("logits",)


def _bert_gelu_tanh():
    # extra: hidden_act "gelu_pytorch_tanh" is F.gelu(approximate="tanh"), which the dynamo
    # exporter emits as Gelu(approximate="tanh") (transformers' "gelu_new" is an explicit formula)
    from transformers import BertConfig, BertModel
    return BertModel(BertConfig(**_bert_kwargs(hidden_act="gelu_pytorch_tanh"))), \
        ("input_ids", "attention_mask", "token_type_ids"), ("last_hidden_state", "pooler_output")


def _distilbert():
    from transformers import DistilBertConfig, DistilBertModel
    cfg = DistilBertConfig(vocab_size=VOCAB, dim=64, n_layers=2, n_heads=4, hidden_dim=128,
                           max_position_embeddings=MAX_POS, pad_token_id=PAD_ID, dropout=0.0,
                           attention_dropout=0.0)
    return DistilBertModel(cfg), ("input_ids", "attention_mask"), ("last_hidden_state",)


def _roberta_family(config_cls, model_cls):
    # RoBERTa-style position ids: cumsum over (input_ids != pad) + pad, so max_position_embeddings
    # is MAX_POS + 2 as in the real checkpoints; pad id 1, type_vocab_size 1
    cfg = config_cls(**_bert_kwargs(max_position_embeddings=MAX_POS + 2, type_vocab_size=1,
                                    pad_token_id=1, bos_token_id=0, eos_token_id=2))
    return model_cls(cfg), ("input_ids", "attention_mask"), ("last_hidden_state", "pooler_output")


def _roberta():
    from transformers import RobertaConfig, RobertaModel
    return _roberta_family(RobertaConfig, RobertaModel)


def _xlm_roberta():
    from transformers import XLMRobertaConfig, XLMRobertaModel
    return _roberta_family(XLMRobertaConfig, XLMRobertaModel)


def _camembert():
    from transformers import CamembertConfig, CamembertModel
    return _roberta_family(CamembertConfig, CamembertModel)


def _albert():
    from transformers import AlbertConfig, AlbertModel
    # factorised embedding (32 -> 64), 2 layers sharing one group of weights
    cfg = AlbertConfig(vocab_size=VOCAB, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                       num_hidden_groups=1, num_attention_heads=4, intermediate_size=128,
                       max_position_embeddings=MAX_POS, type_vocab_size=2, pad_token_id=PAD_ID,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                       classifier_dropout_prob=0.0)
    return AlbertModel(cfg), ("input_ids", "attention_mask", "token_type_ids"), \
        ("last_hidden_state", "pooler_output")


def _electra():
    from transformers import ElectraConfig, ElectraModel
    # ELECTRA's discriminator: embedding_size 32 projected to hidden 64
    cfg = ElectraConfig(**_bert_kwargs(embedding_size=32))
    return ElectraModel(cfg), ("input_ids", "attention_mask", "token_type_ids"), ("last_hidden_state",)


def _mpnet():
    from transformers import MPNetConfig, MPNetModel
    cfg = MPNetConfig(vocab_size=VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=MAX_POS + 2, pad_token_id=1,
                      relative_attention_num_buckets=32, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0)
    return MPNetModel(cfg), ("input_ids", "attention_mask"), ("last_hidden_state", "pooler_output")


def _modernbert():
    from transformers import ModernBertConfig, ModernBertModel
    # layer 0 global (full) attention, layer 1 local (sliding window 4, so seq 7 really slides)
    cfg = ModernBertConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96,
                           num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=MAX_POS,
                           global_attn_every_n_layers=2, local_attention=4, pad_token_id=PAD_ID,
                           eos_token_id=2, bos_token_id=3, cls_token_id=3, sep_token_id=2,
                           attention_dropout=0.0, embedding_dropout=0.0, mlp_dropout=0.0)
    return ModernBertModel(cfg), ("input_ids", "attention_mask"), ("last_hidden_state",)


def _mobilebert():
    from transformers import MobileBertConfig, MobileBertModel
    # not in issue 11's list; its Pad (embedding trigram) and NoNorm make it a useful extra
    cfg = MobileBertConfig(vocab_size=VOCAB, hidden_size=64, embedding_size=32, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=64, intra_bottleneck_size=32,
                           true_hidden_size=32, num_feedforward_networks=2,
                           max_position_embeddings=MAX_POS, type_vocab_size=2, pad_token_id=PAD_ID,
                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return MobileBertModel(cfg), ("input_ids", "attention_mask", "token_type_ids"), \
        ("last_hidden_state", "pooler_output")


def _write_wordpiece_vocab(path: str, size: int = VOCAB) -> None:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    words = ["the", "kiln", "runs", "bert", "on", "a", "pi", "model", "fast", "small"]
    toks = special + letters + ["##" + c for c in letters] + words
    i = 0
    while len(toks) < size:
        toks.append(f"w{i}")
        i += 1
    with open(path, "w") as f:
        f.write("\n".join(toks[:size]) + "\n")


def build_sentence_transformer(workdir: str | None = None):
    """A mean-pooled, L2-normalised sentence encoder over a small BertModel, all local: the
    BertModel and a WordPiece tokenizer are saved with save_pretrained into workdir and loaded by
    sentence_transformers' Transformer module from there."""
    from transformers import BertConfig, BertModel, BertTokenizer
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="kiln-zoo-st-") as tmp:
            return build_sentence_transformer(tmp)
    bert_dir = os.path.join(workdir, "bert")
    os.makedirs(bert_dir, exist_ok=True)
    vocab = os.path.join(workdir, "vocab.txt")
    _write_wordpiece_vocab(vocab)
    BertTokenizer(vocab=vocab).save_pretrained(bert_dir)
    BertModel(BertConfig(**_bert_kwargs())).save_pretrained(bert_dir)  # pooler unused
    tr = Transformer(bert_dir, max_seq_length=MAX_POS)
    pool = Pooling(tr.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[tr, pool, Normalize()], device="cpu")


class _STWrapper(torch.nn.Module):
    def __init__(self, st, input_names):
        super().__init__()
        self.st = st
        self.input_names = tuple(input_names)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        feats = dict(input_ids=input_ids, attention_mask=attention_mask)
        if token_type_ids is not None:
            feats["token_type_ids"] = token_type_ids
        return (self.st(feats)["sentence_embedding"],)


def _sentence_transformer():
    st = build_sentence_transformer()
    return st, ("input_ids", "attention_mask", "token_type_ids"), ("sentence_embedding",)


MODELS: dict[str, Callable] = {
    "bert": _bert,
    "bert_cls": _bert_cls,
    "distilbert": _distilbert,
    "roberta": _roberta,
    "xlm_roberta": _xlm_roberta,
    "camembert": _camembert,
    "albert": _albert,
    "electra": _electra,
    "mpnet": _mpnet,
    "modernbert": _modernbert,
    "sentence_bert": _sentence_transformer,
    # extras, not in issue 11's list
    "mobilebert": _mobilebert,
    "bert_gelu_tanh": _bert_gelu_tanh,
}


def _perturb_constant_params(model: torch.nn.Module, std: float = 0.05) -> None:
    """transformers initialises biases to 0 and norm weights to 1. Real checkpoints are not like
    that, and constant weights hide bugs (a dropped bias, a swapped gamma/beta) and let the dynamo
    exporter's optimiser merge equal initializers into one. Adds seeded noise to every parameter
    whose values are all equal."""
    g = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            if p.numel() > 0 and bool((p == p.reshape(-1)[0]).all()):
                p.add_(torch.randn(p.shape, generator=g) * std)


def build(name: str) -> ZooModel:
    _seed()
    model, inputs, outputs = MODELS[name]()
    _perturb_constant_params(model)
    model.eval()
    if name == "sentence_bert":
        wrapper = _STWrapper(model, inputs)
    else:
        wrapper = _Wrapper(model, inputs, outputs)
    wrapper.eval()
    pad = getattr(getattr(model, "config", None), "pad_token_id", PAD_ID)
    return ZooModel(name, wrapper, tuple(inputs), tuple(outputs), model,
                    PAD_ID if pad is None else pad)


def example_inputs(case: ZooModel, batch: int = 2, seq: int = 7, seed: int = 0,
                   pad: bool = True) -> dict[str, np.ndarray]:
    """int64 feeds; with pad, row b > 0 has its last b tokens padded (pad id, mask 0)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCAB, size=(batch, seq), dtype=np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    if pad:
        for b in range(1, batch):
            n = min(b, seq - 1)
            if n > 0:
                mask[b, seq - n:] = 0
                ids[b, seq - n:] = case.pad_id
    feeds = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in case.input_names:
        tt = np.zeros((batch, seq), dtype=np.int64)
        tt[:, seq // 2:] = 1
        feeds["token_type_ids"] = tt
    return {k: feeds[k] for k in case.input_names}


@torch.no_grad()
def run_torch(case: ZooModel, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outs = case.module(*[torch.from_numpy(feeds[k]) for k in case.input_names])
    return {n: o.detach().numpy() for n, o in zip(case.output_names, outs)}


def export(case: ZooModel, exporter: str, path: str, batch: int = 2, seq: int = 7) -> str:
    """Exports case with dynamic batch and sequence axes to path. exporter: "dynamo" (torch's
    default exporter, its default opset), "torchscript14" / "torchscript17" (dynamo=False)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    feeds = example_inputs(case, batch=batch, seq=seq)
    args = tuple(torch.from_numpy(feeds[k]) for k in case.input_names)
    with torch.no_grad():
        if exporter == "dynamo":
            b = torch.export.Dim("batch", min=1, max=1024)
            s = torch.export.Dim("seq", min=1, max=MAX_POS)
            torch.onnx.export(case.module, args, path, dynamo=True,
                              input_names=list(case.input_names),
                              output_names=list(case.output_names),
                              dynamic_shapes={k: {0: b, 1: s} for k in case.input_names})
        elif exporter.startswith("torchscript"):
            opset = int(exporter[len("torchscript"):])
            axes = {k: {0: "batch", 1: "seq"} for k in case.input_names}
            torch.onnx.export(case.module, args, path, dynamo=False, opset_version=opset,
                              input_names=list(case.input_names),
                              output_names=list(case.output_names), dynamic_axes=axes)
        else:
            raise ValueError(f"unknown exporter {exporter!r}")
    return path
