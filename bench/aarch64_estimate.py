"""Static ESTIMATE of kiln's FP32 and INT8 GEMM speed on the Raspberry Pi 4 (Cortex-A72) and Pi 5
(Cortex-A76), and of BERT-base latency there, without a board: nothing here is measured.

1. Compiles the NEON micro-kernel (kernels/kiln/kernels/gemm/f32_6x16_neon.h, the full 6x16 tile
   tile<6, 1>) with aarch64-linux-gnu-g++ -O2 -mcpu=cortex-a72 and -mcpu=cortex-a76 to assembly.
2. Finds its inner K loops (a label and the backward branch to it, with the tile's 24 fmla; one
   with the L2 prefetch of the next column tile, one without) and runs llvm-mca (LLVM 19) on each
   body: -mcpu=cortex-a57 as the A72 proxy (LLVM's cortex-a72 uses the A57 scheduling model) and
   -mcpu=neoverse-n1 as the A76 proxy (the A76's server sibling).
3. cycles/iteration -> GFLOP/s per core at 1.8 GHz (Pi 4) and 2.4 GHz (Pi 5); the same llvm-mca on
   a block of independent fmla gives the model's FMA peak, so the loop's fraction of peak.
4. BERT-base seq 128 latency = model FLOPs / (loop GFLOP/s x GEMM efficiency) x (1 + non-GEMM
   allowance): the inner loop ignores the driver, M/N edges, A/B cache misses and DRAM bandwidth
   (the Pi 4 streams ~340 MB of weights per inference); --gemm-efficiency and --non-gemm say how much
   is assumed for those.
5. INT8 (kiln compile --quantize int8): the same steps for the INT8 micro-kernel each board's
   dispatch picks (kernels/kiln/kernels/gemm/s8_dispatch.h): Pi 5 gemm_s8_6x16c4_neondot (sdot,
   g++ -mcpu=cortex-a76, llvm-mca neoverse-n1), Pi 4 gemm_s8_6x16c4_neon (smull/smull2 + sadalp,
   g++ -mcpu=cortex-a72, llvm-mca cortex-a57); their K loops are found as in 2 (24 sdot / 24
   sadalp per iteration). Peak: a block of independent sdot, or of independent smull, smull2 +
   2 sadalp (the A72's best int8 sequence). BERT INT8 latency = weight-GEMM ops at the INT8 loop
   rate + attention matmuls at the FP32 rate (attention stays FP32) + the same absolute non-GEMM
   time as the FP32 estimate (LayerNorm, softmax, GELU outside GEMMs stay FP32), with the same
   --gemm-efficiency. The per-row activation quantization (a pass over A per GEMM, 2-10% of a
   GEMM call on x86) is not modelled separately: it is inside the assumed efficiency.

  /usr/bin/python3 bench/aarch64_estimate.py [--seq 128] [--gemm-efficiency 0.85] [--non-gemm 0.15]
        [--json OUT] [--asm-dir DIR]

Needs aarch64-linux-gnu-g++ (scripts/setup.sh) and llvm-mca from LLVM 19 (installed with apt-get
when missing and running as root).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MCA = "/usr/lib/llvm-19/bin/llvm-mca"
CXX = "aarch64-linux-gnu-g++"
# board, g++ -mcpu, llvm-mca proxy, clock (GHz) assumed
BOARDS = [
    ("Raspberry Pi 4", "cortex-a72", "cortex-a57", 1.8),
    ("Raspberry Pi 5", "cortex-a76", "neoverse-n1", 2.4),
]
KERNEL_TU = """#include "kiln/kernels/gemm/f32_6x16_neon.h"
// The full tile (6 rows x 16 columns): the instantiation that does almost all of the FLOPs.
template void kiln::kernels::gemm::f32_6x16_neon::tile<6, 1>(
    const kiln::kernels::gemm::TileArgs&);
"""
# INT8 micro-kernels: board -> (g++ -mcpu, translation unit, hot-instruction regex, multiply-adds
# per hot instruction, peak block). One full 6x16 tile each, the variant s8_dispatch.h picks.
S8_TU = """#include "kiln/kernels/gemm/s8_6x16c4_neondot.h"
template void kiln::kernels::gemm::{ns}::tile<6, 1>(const kiln::kernels::gemm::S8TileArgs&);
"""
# sdot: 4 lanes x 4 products; sadalp: adds the 8 int16 products of one smull / smull2.
SDOT_PEAK = [f"sdot v{i}.4s, v28.16b, v29.16b" for i in range(24)]
SMULL_PEAK = [x for i in range(6) for x in (
    f"smull v{12 + 2 * i}.8h, v28.8b, v29.8b", f"smull2 v{13 + 2 * i}.8h, v28.16b, v29.16b",
    f"sadalp v{2 * i}.4s, v{12 + 2 * i}.8h", f"sadalp v{2 * i + 1}.4s, v{13 + 2 * i}.8h")]
S8_KERNELS = {
    "Raspberry Pi 4": ("gemm_s8_6x16c4_neon", "s8_6x16c4_neon", r"\s*sadalp\s+v\d+\.4s", 8,
                       SMULL_PEAK, 6 * 16),
    "Raspberry Pi 5": ("gemm_s8_6x16c4_neondot", "s8_6x16c4_neondot", r"\s*sdot\s+v\d+\.4s", 16,
                       SDOT_PEAK, 24 * 16),
}
BERT_BASE = dict(layers=12, hidden=768, heads=12, ffn=3072)
BRANCH = re.compile(r"^\s*(b\.\w+|bne|beq|bgt|bge|blt|ble|bhi|bls|cbnz|cbz|tbnz|tbz)\s+.*?(\.L\w+)\s*$")


def ensure_mca():
    if Path(MCA).exists():
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        sys.exit(f"{MCA} missing: apt-get install llvm-19")
    print("installing llvm-19 (llvm-mca) with apt-get ...", file=sys.stderr)
    subprocess.run(["apt-get", "install", "-y", "-q", "llvm-19"], check=True,
                   stdout=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def compile_kernel(mcpu, work, tu=KERNEL_TU, name="neon_tile"):
    src = work / f"{name}.cpp"
    src.write_text(tu)
    out = work / f"{name}_{mcpu}.s"
    subprocess.run([CXX, "-O2", "-std=c++17", f"-mcpu={mcpu}", "-I", str(ROOT / "kernels"), "-I",
                    str(ROOT / "include"), "-S", "-o", str(out), str(src)], check=True)
    return out


def inner_loops(asm_text, hot=r"\s*fmla\s+v\d+\.4s"):
    """(label, body) of every innermost loop (a label, straight-line code, a backward branch to
    the label) whose body holds >= 24 `hot` instructions (vector fmla): the tile's K loops."""
    lines = asm_text.splitlines()
    labels = {ln.rstrip(":").strip(): i for i, ln in enumerate(lines) if re.match(r"^\.L\w+:", ln)}
    loops = []
    for i, ln in enumerate(lines):
        m = BRANCH.match(ln)
        if not m or m.group(2) not in labels or labels[m.group(2)] >= i:
            continue
        span = lines[labels[m.group(2)] + 1:i + 1]
        if any(re.match(r"^\.L\w+:", x) for x in span):
            continue  # not innermost (or not a simple loop)
        body = [x for x in span if x.strip() and not x.strip().startswith(".")]
        if sum(1 for x in body if re.match(hot, x)) >= 24:
            loops.append((m.group(2), body))
    return loops


def mca(body, cpu, iterations=1000):
    proc = subprocess.run([MCA, "-mtriple=aarch64-linux-gnu", f"-mcpu={cpu}",
                           f"-iterations={iterations}"], input="\n".join(body) + "\n",
                          capture_output=True, text=True, check=True)
    total = int(re.search(r"Total Cycles:\s+(\d+)", proc.stdout).group(1))
    rthroughput = float(re.search(r"Block RThroughput:\s+([\d.]+)", proc.stdout).group(1))
    return total / iterations, rthroughput


def fma_peak_cycles(cpu, n=24):
    """Cycles per n independent 128-bit fmla in the llvm-mca model: the model's FMA peak."""
    body = [f"fmla v{i}.4s, v28.4s, v29.s[0]" for i in range(n)]
    return mca(body, cpu)[0]


def bert_flops(seq, layers, hidden, heads, ffn, batch=1):
    """(GEMM FLOPs with constant weights, attention matmul FLOPs) per forward pass."""
    tokens = batch * seq
    gemm = layers * 2 * tokens * hidden * (4 * hidden + 2 * ffn) + 2 * batch * hidden * hidden
    attention = layers * 4 * batch * seq * seq * hidden
    return gemm, attention


def int8_estimates(work, a, gemm_ops, attn_flops, fp32_latency):
    """INT8 K loop per board (S8_KERNELS) -> GOP/s per core, fraction of the model's int8 peak,
    and BERT INT8 latency (GEMMs at that rate, attention and non-GEMM work as in FP32)."""
    loops, latency = [], []
    for board, mcpu, proxy, ghz in BOARDS:
        kernel, ns, hot, macs, peak_block, peak_macs = S8_KERNELS[board]
        asm = compile_kernel(mcpu, work, S8_TU.format(ns=ns), ns)
        found = inner_loops(asm.read_text(), hot)
        if not found:
            sys.exit(f"no K loop with 24 {hot} found in {asm}")
        peak_gops = 2 * peak_macs / mca(peak_block, proxy)[0] * ghz
        for label, body in found:
            (work / f"loop_{ns}_{mcpu}_{label.lstrip('.')}.s").write_text("\n".join(body) + "\n")
            cycles, rthr = mca(body, proxy)
            n_hot = sum(1 for x in body if re.match(hot, x))
            gops = 2 * n_hot * macs / cycles * ghz
            loops.append(dict(board=board, kernel=kernel, gcc_mcpu=mcpu, mca_cpu=proxy, ghz=ghz,
                              label=label, instructions=len(body), hot=n_hot,
                              cycles_per_iter=cycles, block_rthroughput=rthr,
                              ops_per_iter=2 * n_hot * macs, est_gops_per_core=gops,
                              est_peak_gops_per_core=peak_gops,
                              est_fraction_of_peak=gops / peak_gops))
    print("\nINT8 GEMM micro-kernels (the variant s8_dispatch.h picks per board; 1 op = 1 multiply "
          "or add, 2 per int8 multiply-add):\n")
    print("| board | kernel | g++ -mcpu | llvm-mca -mcpu | GHz | instr | sdot/sadalp | cycles/iter "
          "(estimate) | int8 GOP/s per core (estimate) | model int8 peak GOP/s (estimate) | "
          "% of peak (estimate) |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in loops:
        print(f"| {r['board']} | {r['kernel']} | {r['gcc_mcpu']} | {r['mca_cpu']} | {r['ghz']} | "
              f"{r['instructions']} | {r['hot']} | {r['cycles_per_iter']:.2f} | "
              f"{r['est_gops_per_core']:.1f} | {r['est_peak_gops_per_core']:.1f} | "
              f"{100 * r['est_fraction_of_peak']:.0f}% |")
    print(f"\nBERT-base INT8 (kiln compile --quantize int8) batch 1 seq {a.seq}: "
          f"{gemm_ops / 1e9:.2f} G int8 ops in weight GEMMs at the INT8 loop rate; "
          f"{attn_flops / 1e9:.2f} GFLOP attention matmuls at the FP32 loop rate; non-GEMM time "
          f"as in the FP32 estimate; GEMM efficiency {a.gemm_efficiency:.2f} for both.\n")
    print("| board | INT8 loop GOP/s (estimate) | INT8 GEMMs ms | FP32 attention ms | "
          "non-GEMM ms | latency 1 core, ms (estimate) | 4 cores at ideal 4x, ms (estimate, "
          "lower bound) | FP32 1 core, ms (estimate) | INT8/FP32 (estimate) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for board, _, _, _ in BOARDS:
        rate = min(r["est_gops_per_core"] for r in loops if r["board"] == board)
        fp32 = next(x for x in fp32_latency if x["board"] == board)
        eff = a.gemm_efficiency
        gemm_ms = gemm_ops / (rate * 1e9 * eff) * 1e3
        attn_ms = attn_flops / (fp32["loop_gflops"] * 1e9 * eff) * 1e3
        non_gemm_ms = fp32["est_latency_ms_1core"] * a.non_gemm / (1 + a.non_gemm)
        ms = gemm_ms + attn_ms + non_gemm_ms
        latency.append(dict(board=board, seq=a.seq, loop_gops=rate, est_gemm_ms=gemm_ms,
                            est_attention_ms=attn_ms, est_non_gemm_ms=non_gemm_ms,
                            est_latency_ms_1core=ms, est_latency_ms_4cores_ideal=ms / 4,
                            est_speedup_vs_fp32=fp32["est_latency_ms_1core"] / ms))
        print(f"| {board} | {rate:.1f} | {gemm_ms:.0f} | {attn_ms:.0f} | {non_gemm_ms:.0f} | "
              f"{ms:.0f} | {ms / 4:.0f} | {fp32['est_latency_ms_1core']:.0f} | "
              f"{ms / fp32['est_latency_ms_1core']:.2f} |")
    return {"loops": loops, "bert_base": latency}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--gemm-efficiency", type=float, default=0.85,
                    help="whole-GEMM rate / inner-loop rate assumed (driver, edges, cache misses; "
                         "the x86 kernels reach 83-96%% of peak on BERT shapes)")
    ap.add_argument("--non-gemm", type=float, default=0.15,
                    help="non-GEMM time (softmax, LayerNorm, GELU, copies) as a fraction of GEMM "
                         "time")
    ap.add_argument("--json", metavar="OUT")
    ap.add_argument("--asm-dir", help="keep the generated assembly and loop bodies here")
    a = ap.parse_args()
    if not shutil.which(CXX):
        sys.exit(f"{CXX} not found (scripts/setup.sh installs g++-aarch64-linux-gnu)")
    ensure_mca()
    work = Path(a.asm_dir) if a.asm_dir else Path(tempfile.mkdtemp(prefix="kiln_a64_"))
    work.mkdir(parents=True, exist_ok=True)

    gemm_flops, attn_flops = bert_flops(a.seq, **BERT_BASE)
    flops = gemm_flops + attn_flops
    print("ESTIMATES ONLY (llvm-mca static model of the inner loop; no board measured)\n")
    results = []
    for board, mcpu, proxy, ghz in BOARDS:
        asm = compile_kernel(mcpu, work)
        loops = inner_loops(asm.read_text())
        if not loops:
            sys.exit(f"no K loop with 24 fmla found in {asm}")
        peak_cyc = fma_peak_cycles(proxy)
        peak_gflops = 24 * 8 / peak_cyc * ghz
        for label, body in loops:
            kind = "with B prefetch" if any("prfm" in x for x in body) else "no prefetch"
            (work / f"loop_{mcpu}_{label.lstrip('.')}.s").write_text("\n".join(body) + "\n")
            cycles, rthr = mca(body, proxy)
            n_fmla = sum(1 for x in body if re.match(r"\s*fmla\s+v\d+\.4s", x))
            flop_iter = n_fmla * 4 * 2
            gflops = flop_iter / cycles * ghz
            results.append(dict(board=board, gcc_mcpu=mcpu, mca_cpu=proxy, ghz=ghz, loop=kind,
                                instructions=len(body), fmla=n_fmla, cycles_per_iter=cycles,
                                block_rthroughput=rthr, flop_per_iter=flop_iter,
                                est_gflops_per_core=gflops, est_peak_gflops_per_core=peak_gflops,
                                est_fraction_of_peak=gflops / peak_gflops))
    print("| board | g++ -mcpu | llvm-mca -mcpu | GHz | K loop | instr | fmla | cycles/iter "
          "(estimate) | GFLOP/s per core (estimate) | model FMA peak GFLOP/s (estimate) | "
          "% of peak (estimate) |")
    print("|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['board']} | {r['gcc_mcpu']} | {r['mca_cpu']} | {r['ghz']} | {r['loop']} | "
              f"{r['instructions']} | {r['fmla']} | {r['cycles_per_iter']:.2f} | "
              f"{r['est_gflops_per_core']:.1f} | {r['est_peak_gflops_per_core']:.1f} | "
              f"{100 * r['est_fraction_of_peak']:.0f}% |")

    print(f"\nBERT-base (L12 H768 FFN3072) batch 1 seq {a.seq}: {gemm_flops / 1e9:.2f} GFLOP in "
          f"weight GEMMs + {attn_flops / 1e9:.2f} GFLOP in attention matmuls (counted at the same "
          f"rate); assumed GEMM efficiency {a.gemm_efficiency:.2f} of the loop rate, non-GEMM "
          f"allowance +{100 * a.non_gemm:.0f}% of GEMM time.\n")
    print("| board | loop GFLOP/s (estimate) | latency 1 core, ms (estimate) | "
          "latency 4 cores at ideal 4x, ms (estimate, lower bound) |")
    print("|---|---:|---:|---:|")
    latency = []
    for board, _, _, _ in BOARDS:
        rates = [r["est_gflops_per_core"] for r in results if r["board"] == board]
        rate = min(rates)  # the slower loop, conservatively
        ms = flops / (rate * 1e9 * a.gemm_efficiency) * (1 + a.non_gemm) * 1e3
        latency.append(dict(board=board, seq=a.seq, loop_gflops=rate, est_latency_ms_1core=ms,
                            est_latency_ms_4cores_ideal=ms / 4))
        print(f"| {board} | {rate:.1f} | {ms:.0f} | {ms / 4:.0f} |")
    int8 = int8_estimates(work, a, gemm_flops, attn_flops, latency)
    print("\nAll numbers above are estimates from a static pipeline model, not measurements. "
          "Not modelled: cache misses (llvm-mca assumes L1 hits), DRAM bandwidth, the "
          "real A72/A76 pipelines (proxies), clock throttling, thread scaling.")
    if not a.asm_dir:
        shutil.rmtree(work, ignore_errors=True)
    if a.json:
        Path(a.json).write_text(json.dumps(
            {"note": "estimates (llvm-mca), not measurements", "seq": a.seq,
             "gemm_efficiency": a.gemm_efficiency, "non_gemm": a.non_gemm,
             "flops": {"gemm": gemm_flops, "attention": attn_flops}, "loops": results,
             "bert_base": latency, "int8": int8}, indent=1))


if __name__ == "__main__":
    main()
