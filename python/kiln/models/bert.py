"""A BERT encoder identical to Hugging Face's BertModel (eager attention), in plain PyTorch.

Used by the demo, the end-to-end tests and the benchmarks: they build their own models with
random weights (HF initialisation, fixed seed) and export them with torch.onnx.export, so no
model hub is needed. Parameter names match HF's, so a real HF state_dict loads into it.
"""
import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0
    add_pooler: bool = True
    # "finfo": (1-mask) * finfo(float32).min (transformers >= 4.21); "-10000": older versions.
    mask_value: str = "finfo"

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError("hidden_size must be divisible by num_attention_heads")


CONFIGS = {
    "tiny": BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=128, max_position_embeddings=128),
    "small": BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                        intermediate_size=1024),
    "base": BertConfig(),
    # the shapes of all-MiniLM-L6-v2 and of a ModernBERT-base-like FFN (random weights: for speed)
    "minilm": BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536),
    "large-ffn": BertConfig(hidden_size=768, num_hidden_layers=4, num_attention_heads=12,
                            intermediate_size=2304),
}


class BertEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.register_buffer("position_ids",
                             torch.arange(c.max_position_embeddings).expand((1, -1)),
                             persistent=False)
        self.register_buffer("token_type_ids",
                             torch.zeros((1, c.max_position_embeddings), dtype=torch.long),
                             persistent=False)

    def forward(self, input_ids, token_type_ids=None):
        seq_length = input_ids.size(1)
        position_ids = self.position_ids[:, :seq_length]
        if token_type_ids is None:  # HF: the registered zeros buffer, expanded to the batch
            token_type_ids = self.token_type_ids[:, :seq_length].expand(input_ids.size(0), seq_length)
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        embeddings = embeddings + self.position_embeddings(position_ids)
        return self.LayerNorm(embeddings)


class BertSelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.num_attention_heads = c.num_attention_heads
        self.attention_head_size = c.hidden_size // c.num_attention_heads
        self.all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(c.hidden_size, self.all_head_size)
        self.key = nn.Linear(c.hidden_size, self.all_head_size)
        self.value = nn.Linear(c.hidden_size, self.all_head_size)

    def transpose_for_scores(self, x):
        x = x.view(x.size()[:-1] + (self.num_attention_heads, self.attention_head_size))
        return x.permute(0, 2, 1, 3)

    def forward(self, hidden_states, attention_mask):
        query_layer = self.transpose_for_scores(self.query(hidden_states))
        key_layer = self.transpose_for_scores(self.key(hidden_states))
        value_layer = self.transpose_for_scores(self.value(hidden_states))
        scores = torch.matmul(query_layer, key_layer.transpose(-1, -2))
        scores = scores / math.sqrt(self.attention_head_size) + attention_mask
        probs = nn.functional.softmax(scores, dim=-1)
        context = torch.matmul(probs, value_layer).permute(0, 2, 1, 3).contiguous()
        return context.view(context.size()[:-2] + (self.all_head_size,))


class BertResidualOutput(nn.Module):
    """HF's BertSelfOutput / BertOutput: LayerNorm(dense(x) + residual)."""

    def __init__(self, c, in_size):
        super().__init__()
        self.dense = nn.Linear(in_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, hidden_states, input_tensor):
        return self.LayerNorm(self.dense(hidden_states) + input_tensor)


class BertAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertResidualOutput(c, c.hidden_size)

    def forward(self, hidden_states, attention_mask):
        return self.output(self.self(hidden_states, attention_mask), hidden_states)


class BertIntermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, hidden_states):
        return nn.functional.gelu(self.dense(hidden_states))  # exact erf GELU, HF "gelu"


class BertLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertResidualOutput(c, c.intermediate_size)

    def forward(self, hidden_states, attention_mask):
        attention_output = self.attention(hidden_states, attention_mask)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, hidden_states, attention_mask):
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_mask)
        return hidden_states


class BertPooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states):
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.config = c
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c) if c.add_pooler else None

    def _init_weights(self, module):
        c = self.config
        if isinstance(module, nn.Linear):
            module.weight.data.normal_(mean=0.0, std=c.initializer_range)
            if module.bias is not None:
                module.bias.data.zero_()
        elif isinstance(module, nn.Embedding):
            module.weight.data.normal_(mean=0.0, std=c.initializer_range)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)

    def init_weights(self, mode="hf"):
        """hf: HF's _init_weights. random: also randomise biases and LayerNorm affine
        parameters, so that tests exercise the bias / gamma / beta code paths."""
        self.apply(self._init_weights)
        if mode == "random":
            for m in self.modules():
                if isinstance(m, nn.Linear) and m.bias is not None:
                    m.bias.data.normal_(mean=0.0, std=self.config.initializer_range)
                elif isinstance(m, nn.LayerNorm):
                    m.weight.data.normal_(mean=1.0, std=0.1)
                    m.bias.data.normal_(mean=0.0, std=0.1)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        ext = attention_mask[:, None, None, :].to(dtype=torch.float32)
        if self.config.mask_value == "finfo":
            ext = (1.0 - ext) * torch.finfo(torch.float32).min
        else:
            ext = (1.0 - ext) * -10000.0
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), ext)
        if self.pooler is None:
            return (sequence_output,)
        return sequence_output, self.pooler(sequence_output)


def build_model(cfg: BertConfig, seed=0, init="hf"):
    torch.manual_seed(seed)
    m = BertModel(cfg)
    m.init_weights(init)
    return m.eval()


def make_inputs(cfg: BertConfig, batch, seq, seed=1234, pad=True):
    """Token ids, attention mask and token types. Row 0 is full length with token types 0 then 1;
    with pad=True later rows are padded (mask 0) after 3/4 of the length."""
    rng = np.random.RandomState(seed)
    ids = rng.randint(1, cfg.vocab_size, size=(batch, seq)).astype(np.int64)
    mask = np.ones((batch, seq), dtype=np.int64)
    tt = np.zeros((batch, seq), dtype=np.int64)
    if cfg.type_vocab_size > 1:
        tt[0, seq // 2:] = 1
    if pad:
        for b in range(1, batch):
            n = max(1, (seq * 3) // 4)
            ids[b, n:] = cfg.pad_token_id
            mask[b, n:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


def export_onnx(model: BertModel, path, opset=14, with_token_types=True, trace_batch=2,
                trace_seq=8):
    """Exports with dynamic batch and sequence axes. Returns the input and output names."""
    c = model.config
    inputs = make_inputs(c, trace_batch, trace_seq)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_types else [])
    args = tuple(torch.from_numpy(inputs[n]) for n in names)
    outputs = ["last_hidden_state"] + (["pooler_output"] if c.add_pooler else [])
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["last_hidden_state"] = {0: "batch", 1: "sequence"}
    if c.add_pooler:
        dyn["pooler_output"] = {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(model, args, path, opset_version=opset, input_names=names,
                          output_names=outputs, dynamic_axes=dyn, do_constant_folding=True)
    return names, outputs


def run_torch(model: BertModel, inputs: dict, names):
    with torch.no_grad():
        out = model(*[torch.from_numpy(inputs[n]) for n in names])
    return [o.numpy() for o in out]
