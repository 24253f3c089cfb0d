"""kiln.compile: from a torch.nn.Module (or an ONNX file) to a kiln artifact on the PC.

    import kiln
    kiln.compile(model, example_inputs=(ids, mask), target="rpi5", output_dir="bert/")

A module is exported with torch.onnx.export (dynamic batch and sequence axes), then the `kiln`
CLI compiles it. Host only: the board needs just kiln.runtime.
"""
import os
import shutil
import subprocess
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
    built = Path(os.environ.get("KILN_BUILD_DIR", ROOT / "build")) / "tools" / "kiln" / "kiln"
    if built.exists():
        return str(built)
    found = shutil.which("kiln")
    if found:
        return found
    raise CompileError("the kiln compiler was not found: build it (scripts/build.sh) or set KILN_BIN")


def export(module, example_inputs, path, input_names=None, output_names=None, opset=14):
    """torch.onnx.export with dim 0 = `batch` and dim 1 = `seq` dynamic for every input of rank
    >= 2 (dim 0 only for rank 1) whose dims match the first input's, and the same for outputs."""
    import torch

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

    def axes(t):
        d = {}
        if t.dim() >= 1 and t.shape[0] == batch:
            d[0] = "batch"
        if seq is not None and t.dim() >= 2 and t.shape[1] == seq:
            d[1] = "seq"  # kiln's name: gets the compiled maximum (--max-seq) for any input rank
        return d

    dynamic = {n: axes(t) for n, t in zip(input_names, args)}
    dynamic.update({n: axes(t) for n, t in zip(output_names, outs)})
    with torch.no_grad():
        torch.onnx.export(module, args, str(path), opset_version=opset, input_names=input_names,
                          output_names=output_names, dynamic_axes=dynamic,
                          do_constant_folding=True)
    return Path(path)


def compile(model, example_inputs=None, target="native", output_dir="kiln_model", max_seq=None,
            quantize=None, input_names=None, output_names=None, opset=14, verbose=False,
            vocab=None, cased=False, bundle=None, quantize_exclude=None):
    """Compiles `model` (a torch.nn.Module, or the path of an ONNX file) into `output_dir`.

    example_inputs: a tuple of tensors/arrays (names input_0, ...) or a dict name -> tensor;
    dim 0 of every input is exported as `batch` and dim 1 as `sequence` (dynamic).
    vocab / cased: pack a BERT vocab.txt (tokenizer on the board, Module.encode).
    bundle: also write this .tar.gz for the board (artifact + runtime + infer.py).
    quantize: None / "none" (FP32) or "int8" (dynamic INT8: weight GEMMs and embedding tables);
    quantize_exclude: glob patterns (`*`, `?`) over node / weight names to keep in FP32.
    Compiler warnings (e.g. an exclude pattern that matches nothing) are issued as
    warnings.warn(..., kiln.CompileWarning).
    Returns the artifact directory as a Path."""
    if quantize_exclude and quantize in (None, "none"):
        raise CompileError("quantize_exclude needs quantize='int8'")
    if isinstance(quantize_exclude, str):
        quantize_exclude = [quantize_exclude]
    output_dir = Path(output_dir)
    with tempfile.TemporaryDirectory() as tmp:
        if isinstance(model, (str, os.PathLike)):
            onnx_path = Path(model)
        else:
            if example_inputs is None:
                raise CompileError("example_inputs are needed to export a torch.nn.Module")
            onnx_path = export(model, example_inputs, Path(tmp) / "model.onnx", input_names,
                               output_names, opset)
        cmd = [kiln_binary(), "compile", str(onnx_path), "-o", str(output_dir), "--target", target]
        if max_seq:
            cmd += ["--max-seq", str(max_seq)]
        if vocab:
            cmd += ["--vocab", str(vocab)] + (["--cased"] if cased else [])
        if bundle:
            cmd += ["--bundle", str(bundle)]
        if quantize not in (None, "none"):
            cmd += ["--quantize", str(quantize)]
            for pattern in quantize_exclude or []:
                cmd += ["--quantize-exclude", str(pattern)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise CompileError(proc.stderr.strip() or f"kiln compile exited {proc.returncode}")
        for line in proc.stderr.splitlines():
            if line.startswith("kiln: warning: "):
                warnings.warn(line[len("kiln: warning: "):], CompileWarning, stacklevel=2)
        if verbose:
            print(proc.stdout, end="")
    return output_dir
