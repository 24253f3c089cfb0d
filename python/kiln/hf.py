"""Hugging Face models for kiln.compile: a `transformers` PreTrainedModel or a
`sentence_transformers.SentenceTransformer` becomes a module with a positional forward
(input_ids, attention_mask, token_type_ids) and tuple outputs, which both ONNX exporters take.

Imports neither library: a model of theirs can only exist if the user imported them already.
"""
import inspect
import sys
from collections.abc import Mapping

import torch

from .compiler import CompileError

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
DEFAULT_MAX_SEQ = 512  # kiln compile's default cap (kDefaultMaxSeq)
EXAMPLE_BATCH, EXAMPLE_SEQ = 2, 11  # seq unlike any hidden size or label count (output axes)


def kind(model):
    """Which Hugging Face library `model` comes from: "transformers", "sentence_transformers" or
    None (anything else)."""
    st = sys.modules.get("sentence_transformers")
    if st is not None and isinstance(model, st.SentenceTransformer):
        return "sentence_transformers"
    tf = sys.modules.get("transformers")
    if tf is not None and isinstance(model, tf.PreTrainedModel):
        return "transformers"
    return None


class _Positional(torch.nn.Module):
    """forward(input_ids, attention_mask, token_type_ids) -> tuple of the model's outputs. The
    parameters are slots: the i-th argument is input_names[i], whatever the parameter is called
    (dynamo's dynamic_shapes go by position, so the names do not have to match)."""

    def __init__(self, model, input_names, output_names):
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names)
        self.output_names = tuple(output_names)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        feeds = dict(zip(self.input_names, (input_ids, attention_mask, token_type_ids)))
        out = self.outputs(feeds)
        return tuple(out[k] for k in self.output_names)


class _Transformers(_Positional):
    def __init__(self, model, input_names, output_names):
        super().__init__(model, input_names, output_names)
        params = _forward_params(model)
        # a config may ask for tuples, which have no field names to call the outputs by
        self.options = ({"return_dict": True} if "return_dict" in params or
                        any(p.kind == p.VAR_KEYWORD for p in params.values()) else {})

    def outputs(self, feeds):
        return self.model(**feeds, **self.options)


class _SentenceTransformer(_Positional):
    def outputs(self, feeds):
        return self.model(feeds)  # the features dict, with sentence_embedding added


class _SentenceTransformerTokens(_Positional):
    """Only the SentenceTransformer's Transformer module: token_embeddings [batch, seq, dim];
    the artifact pools them itself (model.json "pooling", see sentence_pooling)."""

    def outputs(self, feeds):
        return self.model[0](dict(feeds))


# sentence-transformers' Pooling modes kiln's runtime pools with, by kiln's name.
_ST_POOLING = {"cls": "cls", "mean": "mean", "max": "max", "lasttoken": "last"}
_ST_LEGACY_POOLING = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                      "pooling_mode_mean_tokens": "mean", "pooling_mode_lasttoken": "lasttoken"}


def sentence_pooling(model):
    """(mode, normalize) when the SentenceTransformer is [Transformer, Pooling, Normalize?] with
    one pooling mode kiln pools with (cls, mean, max, lasttoken) over every token (the settings
    of its 1_Pooling/config.json and modules.json); else None (other modules, e.g. Dense, or
    other modes: the artifact keeps the model's own sentence_embedding graph)."""
    mods = list(model)
    if len(mods) not in (2, 3) or type(mods[1]).__name__ != "Pooling":
        return None
    pool = mods[1]
    mode = getattr(pool, "pooling_mode", None)
    if mode is None:  # sentence-transformers before 6: one flag per mode
        config = pool.get_config_dict()
        on = [m for k, m in _ST_LEGACY_POOLING.items() if config.get(k)]
        other = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and
                 k not in _ST_LEGACY_POOLING]
        mode = on[0] if len(on) == 1 and not other else None
    if isinstance(mode, (list, tuple)) and len(mode) == 1:
        mode = mode[0]
    if not isinstance(mode, str) or mode not in _ST_POOLING:
        return None
    if not getattr(pool, "include_prompt", True):
        return None
    if len(mods) == 3 and type(mods[2]).__name__ != "Normalize":
        return None
    return _ST_POOLING[mode], len(mods) == 3


def _forward_params(model):
    return inspect.signature(model.forward).parameters


def _max_positions(model):
    """Longest input the position table covers: max_position_embeddings, less the RoBERTa
    family's offset (positions start after the pad id: its position table has padding_idx set)."""
    n = getattr(model.config, "max_position_embeddings", None)
    if n is None:
        return None
    for name, mod in model.named_modules():
        if (name.endswith("position_embeddings") and isinstance(mod, torch.nn.Embedding)
                and mod.padding_idx is not None):
            n = min(n, mod.num_embeddings - mod.padding_idx - 1)
    return n


def _text_model(model, what):
    """The transformers model doing the token work, the text inputs its forward accepts, and
    those the artifact takes by default."""
    if what == "sentence_transformers":
        first = model[0] if len(model) else None
        hf = getattr(first, "auto_model", None)
        if hf is None:
            raise CompileError(f"the SentenceTransformer's first module is "
                               f"{type(first).__name__}: kiln.compile needs a Transformer module "
                               "(a transformers model) there")
        default = getattr(getattr(model, "tokenizer", None), "model_input_names", None)
    else:
        hf, default = model, None
    params = _forward_params(hf)
    if "input_ids" not in params:
        raise CompileError(f"{type(hf).__name__}.forward takes no input_ids (its parameters: "
                           f"{', '.join(params)}): kiln.compile exports text encoders fed token "
                           "ids; wrap another model in a torch.nn.Module with positional tensor "
                           "inputs and pass example_inputs")
    accepted = [n for n in TEXT_INPUTS if n in params]
    if default is None:
        # The RoBERTa family (type_vocab_size 1) and DeBERTa (0) take token_type_ids but have no
        # segments: their tokenizers return none, so the artifact does not ask for them either.
        default = [n for n in accepted
                   if n != "token_type_ids" or getattr(hf.config, "type_vocab_size", 2) > 1]
    return hf, accepted, [n for n in accepted if n in default]


def _select_inputs(model_name, accepted, default, input_names, example_inputs):
    """The artifact's input names (in TEXT_INPUTS order) and the example values given for them:
    input_names, else the keys of a dict example_inputs, else the default."""
    if isinstance(example_inputs, Mapping):  # a dict or a tokenizer's BatchEncoding
        given = {k: v for k, v in example_inputs.items()
                 if not isinstance(v, str)}  # SentenceTransformer.preprocess adds "modality"
        names = list(input_names or given)
    else:
        names = list(input_names or default)
        values = ([] if example_inputs is None else list(example_inputs)
                  if isinstance(example_inputs, (tuple, list)) else [example_inputs])
        if len(values) > len(names):
            raise CompileError(f"example_inputs has {len(values)} tensors, {model_name} is "
                               f"compiled with {len(names)} inputs ({', '.join(names)}): pass a "
                               "dict name -> tensor")
        given = dict(zip(names, values))
    unknown = [n for n in dict.fromkeys(names + list(given)) if n not in accepted]
    if unknown:
        raise CompileError(f"{model_name} takes no {', '.join(map(repr, unknown))}: its text "
                           f"inputs are {', '.join(accepted)}")
    if "input_ids" not in names:
        raise CompileError(f"{model_name} needs input_ids among its inputs, got "
                           f"{', '.join(names)}")
    extra = [n for n in given if n not in names]
    if extra:
        raise CompileError(f"example_inputs has {', '.join(extra)}, which input_names "
                           f"({', '.join(names)}) leaves out")
    return [n for n in TEXT_INPUTS if n in names], given


def _example(names, given, config):
    """int64 tensors for names: the given ones, the rest made at the given input_ids' shape (or
    EXAMPLE_BATCH x EXAMPLE_SEQ) with padding at the end of every row but the first."""
    out = {n: torch.as_tensor(v).to(torch.int64) for n, v in given.items()}
    if "input_ids" in out:
        batch, seq = out["input_ids"].shape
        if seq < 2:  # traced at one token, transformers takes other branches (is_causal & co.)
            raise CompileError(f"example_inputs: input_ids has {seq} token per row; give at "
                               "least 2 (or no example_inputs)")
    else:
        batch, seq = EXAMPLE_BATCH, EXAMPLE_SEQ
    g = torch.Generator().manual_seed(0)
    lengths = [max(1, seq - b) for b in range(batch)]
    if "input_ids" not in out:
        ids = torch.randint(0, config.vocab_size, (batch, seq), generator=g)
        for b, n in enumerate(lengths):
            ids[b, n:] = getattr(config, "pad_token_id", None) or 0
        out["input_ids"] = ids
    if "attention_mask" in names and "attention_mask" not in out:
        out["attention_mask"] = (torch.arange(seq)[None, :] <
                                 torch.tensor(lengths)[:, None]).to(torch.int64)
    if "token_type_ids" in names and "token_type_ids" not in out:
        tt = torch.zeros(batch, seq, dtype=torch.int64)
        tt[:, seq // 2:] = 1
        out["token_type_ids"] = tt
    return tuple(out[n] for n in names)


def prepare(model, example_inputs=None, input_names=None, output_names=None, max_seq=None,
            tokens_only=False):
    """-> (module, example args, input names, output names, max_seq) for kiln.compiler.export.

    max_seq (None: derived) bounds the sequence axis: min(512, the position table's length, the
    SentenceTransformer's max_seq_length). tokens_only: a SentenceTransformer is exported
    without its Pooling / Normalize modules, output token_embeddings."""
    what = kind(model)
    hf, accepted, default = _text_model(model, what)
    model_name = type(model).__name__
    names, given = _select_inputs(model_name, accepted, default, input_names, example_inputs)
    args = _example(names, given, hf.config)
    wrapper_cls = _Transformers
    if what == "sentence_transformers":
        wrapper_cls = _SentenceTransformerTokens if tokens_only else _SentenceTransformer
    model.eval()
    with torch.no_grad():
        probe = wrapper_cls(model, names, ()).outputs(dict(zip(names, args)))
    if not isinstance(probe, Mapping):
        raise CompileError(f"{model_name} returned a {type(probe).__name__}, not a "
                           "ModelOutput: kiln.compile names the outputs after its fields")
    # Tensor fields only: None entries and tuples (hidden_states, attentions) are not outputs;
    # a SentenceTransformer also hands back its input features.
    fields = [k for k, v in probe.items() if torch.is_tensor(v) and k not in TEXT_INPUTS]
    default = fields
    if what == "sentence_transformers":
        default = ["token_embeddings" if tokens_only else "sentence_embedding"]
    outputs = list(output_names or default)
    unknown = [o for o in outputs if o not in fields]
    if unknown:
        raise CompileError(f"{model_name} has no tensor output "
                           f"{', '.join(map(repr, unknown))}; its outputs are {', '.join(fields)}")
    positions = _max_positions(hf)
    if max_seq is None:
        limits = [DEFAULT_MAX_SEQ, positions]
        if what == "sentence_transformers":
            limits.append(model.get_max_seq_length())
        max_seq = min(n for n in limits if n)
    elif positions and max_seq > positions:  # before the exporter trips over it less clearly
        raise CompileError(f"max_seq {max_seq} is larger than {model_name}'s maximum "
                           f"positions {positions}")
    return wrapper_cls(model, names, outputs).eval(), args, names, outputs, max_seq
