"""kiln.compile: from a Hugging Face model, a torch.nn.Module or an ONNX file to a kiln artifact
on the PC.

    import kiln
    kiln.compile(hf_model, target="rpi5", output_dir="bert/")  # transformers, sentence-transformers
    kiln.compile(module, example_inputs=(ids, mask), target="rpi5", output_dir="bert/")

A module is exported with torch.onnx.export (dynamic batch and sequence axes; a Hugging Face
model through kiln.hf's positional wrapper), then the `kiln` CLI compiles it. Host only: the
board needs just kiln.runtime.
"""
import inspect
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class CompileError(RuntimeError):
    """kiln compile failed; the message is the compiler's."""


class CompileWarning(UserWarning):
    """kiln compile succeeded with a warning (the compiler's message)."""


def kiln_binary():
    env = os.environ.get("KILN_BIN")
    if env:
        return env
    packaged = Path(__file__).resolve().parent / "kiln"  # the `kiln` wheel's own compiler
    if packaged.is_file():
        return str(packaged)
    built = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")) / "tools" / "kiln" / "kiln"
    if built.exists():
        return str(built)
    found = shutil.which("kiln")
    if found:
        return found
    raise CompileError("the kiln compiler was not found: pip install kiln, build it "
                       "(scripts/build.sh) or set KILN_BIN")


def _torch_version():
    import torch

    major, minor = re.match(r"(\d+)\.(\d+)", torch.__version__).groups()
    return int(major), int(minor)


def default_exporter():
    """The exporter kiln.compile uses for a transformers model: torch.onnx.export's own default
    (dynamo from torch 2.9), TorchScript before."""
    return "dynamo" if _torch_version() >= (2, 9) else "torchscript"


def export(module, example_inputs, path, input_names=None, output_names=None, opset=None,
           exporter="torchscript", max_seq=None):
    """torch.onnx.export with dim 0 = `batch` and dim 1 = `seq` dynamic for every input of rank
    >= 2 (dim 0 only for rank 1) whose dims match the first input's, and the same for outputs
    (TorchScript; dynamo infers the outputs' dims). exporter: "torchscript" (dynamo=False, opset
    default 14) or "dynamo" (torch.export, opset default the exporter's; external weights in
    `<path>.data`, which kiln reads). max_seq: the `seq` bound dynamo may assume."""
    import torch

    if exporter not in ("torchscript", "dynamo"):
        raise CompileError(f"exporter {exporter!r}: use 'dynamo' or 'torchscript'")
    if isinstance(example_inputs, dict):
        input_names = input_names or list(example_inputs)
        example_inputs = tuple(example_inputs[n] for n in input_names)
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    args = tuple(torch.as_tensor(x) for x in example_inputs)
    input_names = input_names or [f"input_{i}" for i in range(len(args))]
    module = module.eval()
    with torch.no_grad():
        outs = module(*args)
    outs = outs if isinstance(outs, (tuple, list)) else (outs,)
    output_names = output_names or [f"output_{i}" for i in range(len(outs))]
    batch, seq = args[0].shape[0], (args[0].shape[1] if args[0].dim() > 1 else None)

    def axes(t, batch_dim="batch", seq_dim="seq"):
        d = {}
        if t.dim() >= 1 and t.shape[0] == batch:
            d[0] = batch_dim
        if seq is not None and t.dim() >= 2 and t.shape[1] == seq:
            d[1] = seq_dim  # kiln's name: gets the compiled maximum (--max-seq) for any input rank
        return d

    # torch >= 2.9 exports with dynamo unless told otherwise; torch < 2.5 has no such argument
    has_dynamo_arg = "dynamo" in inspect.signature(torch.onnx.export).parameters
    options = {} if opset is None else {"opset_version": opset}
    if exporter == "dynamo":
        if not has_dynamo_arg:
            raise CompileError(f"exporter 'dynamo' needs torch >= 2.5 (this is torch "
                               f"{torch.__version__}): use exporter='torchscript'")
        dims = (torch.export.Dim("batch", min=1),
                torch.export.Dim("seq", min=1, **({"max": max_seq} if max_seq else {})))
        options.update(dynamo=True, verbose=False,
                       dynamic_shapes=tuple(axes(t, *dims) for t in args))
    else:
        dynamic = {n: axes(t) for n, t in zip(input_names, args)}
        dynamic.update({n: axes(t) for n, t in zip(output_names, outs)})
        options.update(dynamic_axes=dynamic, do_constant_folding=True,
                       opset_version=14 if opset is None else opset)
        if has_dynamo_arg:
            options["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), input_names=input_names,
                          output_names=output_names, **options)
    return Path(path)


def _tokenizer_file(tokenizer, model, vocab, tmp):
    """The tokenizer.json to pack: a path as given; a `tokenizers.Tokenizer` or a fast
    transformers tokenizer written into tmp; with neither tokenizer nor vocab, a
    SentenceTransformer's own (fast) tokenizer; else None."""
    st = sys.modules.get("sentence_transformers")
    if tokenizer is None and vocab is None and st is not None and \
            isinstance(model, st.SentenceTransformer):
        own = getattr(model, "tokenizer", None)
        if own is None or not hasattr(getattr(own, "backend_tokenizer", own), "to_str"):
            return None  # a slow tokenizer: nothing to pack
        tokenizer = own
    if tokenizer is None:
        return None
    if isinstance(tokenizer, (str, os.PathLike)):
        return Path(tokenizer)
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if not hasattr(backend, "to_str"):
        raise CompileError(f"tokenizer: expected the path of a tokenizer.json, a "
                           f"tokenizers.Tokenizer or a fast transformers tokenizer, got "
                           f"{type(tokenizer).__name__}")
    path = Path(tmp) / "tokenizer.json"
    path.write_text(backend.to_str(), encoding="utf-8")
    return path


def _load_sentence_transformer(path):
    """A SentenceTransformer saved to directory `path` (modules.json, 1_Pooling/config.json,
    ...), loaded on the CPU."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as e:
        raise CompileError(f"{path} is a sentence-transformers model directory (modules.json); "
                           f"loading it needs the sentence-transformers package: {e}") from e
    return SentenceTransformer(str(path), device="cpu")


def compile(model, example_inputs=None, target="native", output_dir="kiln_model", max_seq=None,
            quantize=None, input_names=None, output_names=None, opset=None, verbose=False,
            vocab=None, cased=False, bundle=None, quantize_exclude=None, exporter=None,
            tokenizer=None, pooling=None, normalize=None, calibrate=None, smoothing=True,
            min_cosine=None, tuning_log=None, weight_group=None):
    """Compiles `model` into `output_dir` and returns the artifact directory as a Path.

    model: one of
    - a `transformers` PreTrainedModel with a text forward (BertModel,
      BertForSequenceClassification, DistilBertModel, RobertaModel, ModernBertModel, ...):
      inputs input_ids, attention_mask and token_type_ids, those its forward takes
      (token_type_ids only with config.type_vocab_size > 1); outputs named after its ModelOutput's
      tensor fields (last_hidden_state, pooler_output, logits, ...);
    - a `sentence_transformers.SentenceTransformer` over a transformers model (or the path of
      a directory it was saved to, with modules.json): the inputs its tokenizer returns. When
      its modules are Transformer, Pooling (cls, mean, max or lasttoken) and optionally
      Normalize, the artifact outputs `token_embeddings` and pools and normalises in the
      runtime as those modules say (model.json "pooling", m.embed / kiln-rt embed); any other
      stack (Dense, other modes) is exported whole, output `sentence_embedding`, served as it
      is by m.embed;
    - any other torch.nn.Module, with example_inputs;
    - the path of an ONNX file (compiled as it is).
    example_inputs: a tuple of tensors/arrays (names input_0, ...) or a dict name -> tensor;
    dim 0 of every input is exported as `batch` and dim 1 as `seq` (dynamic). Optional for the
    Hugging Face models: a tokenizer's output (its keys choose the inputs) or nothing (kiln makes
    int64 inputs of batch 2 x seq 11 with padding).
    input_names / output_names: for a Hugging Face model, which of its inputs / outputs to keep.
    max_seq: the longest sequence the artifact runs; default min(512, the model's positions:
    kiln compile reads them from the position table, for a Hugging Face model from its config,
    less the RoBERTa family's pad offset, and a SentenceTransformer's max_seq_length).
    exporter: "dynamo" (torch.onnx.export(dynamo=True, dynamic_shapes=...), torch >= 2.5) or
    "torchscript" (dynamo=False). Default: for a Hugging Face model, dynamo with torch >= 2.9 (its
    default there), else TorchScript; TorchScript for any other module, as before.
    opset: the ONNX opset. Default: TorchScript 14 for a plain module, 17 for a Hugging Face model
    (14 with torch < 2.0); dynamo its own (18+).
    vocab / cased: pack a BERT vocab.txt (tokenizer on the board, Module.encode).
    tokenizer: pack a Hugging Face tokenizer instead (WordPiece, byte-level BPE or Unigram; see
    runtime/tokenizer_json.h for the components the runtime runs): the path of a tokenizer.json,
    a `tokenizers.Tokenizer` or a fast transformers tokenizer. A SentenceTransformer's own fast
    tokenizer is packed when neither tokenizer nor vocab is given.
    pooling / normalize: sentence embeddings (m.embed, kiln-rt embed): "cls", "mean", "max" or
    "last" over the tokens of the output last_hidden_state (padding never counted), or "none"
    for an output that is already [batch, dim]; normalize=True L2-normalises. Default: a
    SentenceTransformer's own Pooling / Normalize modules (above), else no pooling; a mode
    given for a SentenceTransformer replaces its own (its Transformer alone is exported).
    bundle: also write this .tar.gz for the board (artifact + runtime + infer.py).
    quantize: None / "none" (FP32) or "int8" (dynamic INT8: weight GEMMs and embedding tables);
    quantize_exclude: glob patterns (`*`, `?`) over node / weight names to keep in FP32.
    calibrate: INT8 calibration inputs for activation smoothing: the path of an .npz (keys =
    graph input names), .npy (the first input) or .txt (a text per line, first 64, tokenized with
    the model's tokenizer), a dict name -> array (saved to an .npz here) or a list of texts.
    Default: generated token ids. smoothing=False: INT8 without activation smoothing.
    weight_group: INT8 weight scales per group of this many input channels (0 or a multiple of 4
    up to 512; 0 = one scale per output channel); default: kiln compile's --int8-weight-group.
    min_cosine: INT8 mixed precision, e.g. 0.9995: the fewest layers stay FP32 for the outputs'
    mean per-vector cosine to FP32 on the calibration inputs to reach it (kiln inspect lists
    each layer's precision).
    tuning_log: a `kiln tune` log (tuning.json): its tuned GEMM schedules go into model.so and
    are used on the CPU it was measured on (the defaults elsewhere).
    Errors raise kiln.CompileError. Compiler warnings (e.g. an exclude pattern that matches
    nothing) are issued as warnings.warn(..., kiln.CompileWarning)."""
    if quantize_exclude and quantize in (None, "none"):
        raise CompileError("quantize_exclude needs quantize='int8'")
    if ((calibrate is not None or not smoothing or min_cosine or weight_group is not None)
            and quantize in (None, "none")):
        raise CompileError("calibrate / smoothing / weight_group / min_cosine need "
                           "quantize='int8'")
    if isinstance(quantize_exclude, str):
        quantize_exclude = [quantize_exclude]
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(model, (str, os.PathLike)) and (Path(model) / "modules.json").is_file():
            model = _load_sentence_transformer(model)
        tokenizer_json = _tokenizer_file(tokenizer, model, vocab, tmp)  # before model is wrapped
        if isinstance(model, (str, os.PathLike)):
            onnx_path = Path(model)
        else:
            from . import hf

            what = hf.kind(model)
            # A SentenceTransformer is exported as its Transformer alone when the artifact pools:
            # as its own modules say, or with the pooling asked for here.
            tokens_only = what == "sentence_transformers" and not output_names
            own = hf.sentence_pooling(model) if tokens_only and pooling is None else None
            if own:
                pooling, normalize = own[0], own[1] if normalize is None else normalize
            tokens_only = tokens_only and pooling not in (None, "none")
            if what:
                model, example_inputs, input_names, output_names, max_seq = hf.prepare(
                    model, example_inputs, input_names, output_names, max_seq,
                    tokens_only=tokens_only)
                exporter = exporter or default_exporter()
                if opset is None and exporter == "torchscript":
                    opset = 17 if _torch_version() >= (2, 0) else 14
            elif example_inputs is None:
                raise CompileError("example_inputs are needed to export a torch.nn.Module")
            onnx_path = export(model, example_inputs, Path(tmp) / "model.onnx", input_names,
                               output_names, opset, exporter or "torchscript", max_seq)
        cmd = [kiln_binary(), "compile", str(onnx_path), "-o", str(output_dir), "--target", target]
        if max_seq:
            cmd += ["--max-seq", str(max_seq)]
        if vocab:
            cmd += ["--vocab", str(vocab)] + (["--cased"] if cased else [])
        if tokenizer_json:
            cmd += ["--tokenizer", str(tokenizer_json)]
        if pooling:
            cmd += ["--pooling", str(pooling)]
        if normalize:
            cmd += ["--normalize"]
        if bundle:
            cmd += ["--bundle", str(bundle)]
        if tuning_log:
            cmd += ["--tuning-log", str(tuning_log)]
        if quantize not in (None, "none"):
            cmd += ["--quantize", str(quantize)]
            for pattern in quantize_exclude or []:
                cmd += ["--quantize-exclude", str(pattern)]
            if isinstance(calibrate, dict):
                import numpy as np

                path = Path(tmp) / "calibration.npz"
                np.savez(path, **{k: np.asarray(v) for k, v in calibrate.items()})
                calibrate = path
            elif isinstance(calibrate, (list, tuple)):  # texts, tokenized by the compiler
                path = Path(tmp) / "calibration.txt"
                path.write_text("".join(" ".join(str(t).split()) + "\n" for t in calibrate),
                                encoding="utf-8")
                calibrate = path
            if calibrate is not None:
                cmd += ["--calibrate", str(calibrate)]
            if not smoothing:
                cmd += ["--no-smoothing"]
            if weight_group is not None:
                cmd += ["--int8-weight-group", str(int(weight_group))]
            if min_cosine:
                cmd += ["--min-cosine", repr(float(min_cosine))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(proc.stderr.strip() or f"kiln compile exited {proc.returncode}")
        for line in proc.stderr.splitlines():
            if line.startswith("kiln: warning: "):
                warnings.warn(line[len("kiln: warning: "):], CompileWarning, stacklevel=2)
        if verbose:
            print(proc.stdout, end="")
    return output_dir
