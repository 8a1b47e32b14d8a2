"""The `numba` backend: Longformer's band attention as fused, parallel Numba kernels on the CPU.

Computes what `refimpl.attention.sliding_window_attention` computes (passes 1-3: the band and the global columns),
with the same pass numbers and names, so the two files can be read side by side. The model around it is unchanged:
the dense projections stay NumPy matrix products (BLAS), pass 4 (the global rows) stays the model's.

Legend: B batch, N sequence length, H heads, D head size, W one-sided window, G global tokens,
        R = 12 queries of one group, M <= 2W + R keys that a group can see.

What is different from the reference, and why:
  - No (B, H, N, 2W+1) array unless output_attentions: the reference builds the whole band of scores; here one
    group of R = 12 queries at a time holds its band, (R, M) floats indexed by key (key jlo + m), and the context
    is written directly. The probabilities are written out only when asked for.
  - Passes 1 and 3 are small matrix products in register tiles (`_tile_product`): out[r, 0:32] = sum_t a[r, t]
    b[t, 0:32] for the 12 rows, the 24 running sums (12 rows x 2 vectors of 16 floats) held in AVX-512 registers
    while t runs. Pass 1: the group's 12 queries against 32 keys of K transposed (D, keys) at a time, t over the
    head dims (the last keys in tiles of 16); pass 3: the 12 rows of probabilities against 32 head dims of V, t over
    the keys, straight from v (N, D). The tile is written as LLVM vector code through an intrinsic, because LLVM's
    vectorizer makes 256-bit loops for this CPU (its tuning prefers them) and keeps running sums in memory.
    Measured on the Intel Xeon (KVM guest, LLVM: rocketlake; 2 threads, 4096 tokens, 12 heads of 64, W = 256): as
    loops (4 queries x 4 head dims per sweep, LLVM-vectorized) the kernel took 49-53 ms, the 256-bit FMA peak
    (~150 GFLOP/s on the 2 cores, about half of OpenBLAS's 512-bit sgemm); as 4 x 64 tiles 41.6 ms; as 8 x 32
    tiles 38.7; as 12 x 32 tiles 38.2 (0.96x of 8 x 32 in the same process; at 16384 tokens 187, 177, 165 ms): a
    group's band of K (and of V) is ~130 KB, more than the core's 48 KB L1, so each multiply-add's operand comes
    from L2, and 12 rows use each loaded vector 12 times instead of 4 (an earlier try of 8 x 32 tiles in pass 1
    alone gained nothing). 12 x 32 is the largest tile that keeps its sums, two operand vectors and a broadcast in
    the 32 vector registers, as long as LLVM does not unroll the tile's loop: it did for the AMD EPYC (Zen 5) and
    spilled, so the loop says not to (the kernel 31.3 -> 18.9 ms at 4096 tokens there). Forcing 512-bit vectors
    on the loops (NUMBA_CPU_FEATURES with -prefer-256-bit) gave 54.5 ms against 53.3: not used. Head sizes that are
    not a multiple of 32 go through loops in pass 3, which read V transposed; each job transposes the keys (and then
    the values) its queries see into its own buffers.
  - Pass 2's max goes through LLVM's maxnum (`_max`), which LLVM vectorizes; Python's max compiled to compares
    and branches that it did not (510 ns a row of 513 scores, against 80; pass 2 took 24 ms of the kernel's 68 before).
    Its division is left to the end: the R x D context is scaled by 1 / the sum, not the G + 2W+1 probabilities.
  - exp is a float32 polynomial (Cephes' expf, within 2 ulp) that LLVM vectorizes; math.exp is a scalar libm call,
    3x slower per element here. For a row whose keys are all local (no padding or global key among them: nearly
    every row) the same steps run 16 at a time as LLVM vector code (`_exp_row`): pass 2 took 8.7 of the kernel's
    38.6 ms at 4096 tokens, and the kernel 0.97x with it (paired in one process).
  - GELU uses the reference's rational erf (math.erf is a scalar call: the GELU of a 4096 x 3072 array took 110-190
    ms with it, 2.5 ms with the rational erf), 16 at a time as LLVM vector code (`_gelu_row`): a 2048 x 3072 block
    2.48 -> 1.83 ms, the same numbers.
  - Loops that LLVM must vectorize run from 0 over sliced views, and small helpers are inlined: a loop from a
    non-zero start makes Numba check every index for negative wraparound, and a call left in a loop keeps Numba's
    error-status branch; either one stopped vectorization (GELU: 20 ms -> 2.5 ms at 4096 x 3072).
  - Summation orders differ from BLAS's, so results differ in the last bits: within 1e-5 on hidden states and
    1e-6 on probabilities of the reference (tests/refimpl/backends/test_numba.py).

Threads: the kernels run `prange` over (batch x heads x blocks of queries) on Numba's threads, NUMBA_NUM_THREADS of
them (default: all cores). BLAS runs the projections between the kernels, never at the same moment, but idle
threads that spin still take the cores from the other pool:
  - Numba's OpenMP threads: this module sets OMP_WAIT_POLICY=PASSIVE unless the user set it; an OpenMP runtime
    loaded before it (PyTorch's, when torch is imported first) is paused after each kernel instead (see below).
  - NumPy's OpenBLAS (pthreads build) keeps its idle threads spinning for 2^28 cycles (~0.1 s) after every
    product; on 2 cores that took the band kernel that follows from 63 to 105-117 ms, and the GELU and LayerNorm
    after the FFN products likewise. OpenBLAS reads its limit, `thread_timeout`, from OPENBLAS_THREAD_TIMEOUT once,
    when NumPy loads it, and has no function to change it. So when this backend is created it writes the limit the
    variable would have set (2^4 cycles: an idle thread sleeps at once and is woken by the next product) into
    the loaded library itself: threadpoolctl finds the library, its ELF symbol table gives the address of
    `thread_timeout` (see `quiet_openblas_threads`). The threads still run every product; they only stop spinning
    in between, so NumPy's products keep their speed (measured: sgemm 308 GFLOP/s after, 296-321 before). This
    changes the OpenBLAS of the whole process, as the variable would. A value the user set with
    OPENBLAS_THREAD_TIMEOUT is left alone; where the library cannot be found or its build has no symbol table,
    nothing is written and a warning says so. (Measured, and not used: openblas_set_num_threads(1) around a kernel
    does not stop threads that already spin, 96 ms; blas_thread_shutdown_ before each kernel does, 62 ms, but it
    would hang a NumPy product running in another thread at that moment.)

Compilation: each kernel compiles once per process for its one signature, and is cached on disk (cache=True) in
NUMBA_CACHE_DIR or next to this file. Where no cache folder is writable, the kernels compile in every process
instead, with a warning; nothing fails.
"""

from __future__ import annotations

import ctypes
import math
import os
import re
import struct
import sys
import threading
import warnings

import numba
import numpy as np
from numba import prange, types
from llvmlite import ir
from numba.extending import intrinsic

from refimpl.attention import LOCAL, MASKED, PADDING, global_softmax, head_dilations
from refimpl.backends.base import check_attention_inputs, projection_scales
from refimpl.backends.numpy import NumpyBackend
from refimpl.ops import ERF_CLAMP, ERF_P, ERF_Q


def _loaded_openmp_runtimes() -> list[str]:
    """Paths of the OpenMP runtimes (GNU libgomp, LLVM/Intel libomp, libiomp5) already mapped into this process."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split(maxsplit=5)[-1].strip() for line in f if "/lib" in line}
    except OSError:  # not Linux: Numba's OpenMP layer is rare there; nothing is paused
        return []
    return sorted(p for p in paths if re.search(r"/lib(gomp|omp|iomp5)[^/]*\.so", p))


# Numba's OpenMP threads (its threading layer here) spin for a while after each kernel before they sleep. In this
# model a BLAS product follows every kernel on the same cores, and that spinning takes CPU from it: the whole model
# ran 7% slower at 4096 tokens on 2 cores. PASSIVE lets them sleep at once. An OpenMP runtime reads it once, when it
# is loaded; a value set by the user wins. Other OpenMP libraries that load after this import (PyTorch's, for one)
# read it too. But a runtime loaded *before* this import (`import torch` first: Numba's OpenMP layer then uses
# PyTorch's libgomp, of the same name) keeps its default, ~300,000 spins (~3 ms) after every kernel: the whole model
# took 3.44-3.46 s at 4096 tokens instead of 3.13-3.19. OpenMP has no call to change the policy afterwards, so for
# such a runtime the backend pauses it after each of its kernels (omp_pause_resource_all(omp_pause_soft), OpenMP 5.0:
# the calling thread's idle threads end instead of spinning, and the next kernel starts new ones, ~50 us):
# 3.15-3.27 s. `_SPINNING_OPENMP` lists those runtimes; none when the user set OMP_WAIT_POLICY or GOMP_SPINCOUNT.
_SPINNING_OPENMP = [] if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ \
    else _loaded_openmp_runtimes()
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
OMP_PAUSE_SOFT = 1  # omp_pause_resource_t: omp_pause_soft = 1, omp_pause_hard = 2


def _openmp_pauses() -> list:
    """(path, its omp_pause_resource_all) for each runtime in _SPINNING_OPENMP that has it (OpenMP 5.0; GCC 9 and
    later); a warning for one that has not."""
    pauses = []
    for path in _SPINNING_OPENMP:
        try:
            pause = ctypes.CDLL(path).omp_pause_resource_all
        except (OSError, AttributeError):
            warnings.warn(f"{path} was loaded before the numba backend and spins after each of its kernels, and it "
                          "has no omp_pause_resource_all to stop that; import refimpl before torch, or start Python "
                          "with OMP_WAIT_POLICY=PASSIVE", RuntimeWarning, stacklevel=3)
            continue
        pause.argtypes, pause.restype = [ctypes.c_int], ctypes.c_int
        pauses.append((path, pause))
    return pauses

R = 12  # queries per group: pass 1 and pass 3 work on 12 queries at once
BLOCK = 256  # queries per job of the parallel loop, at least: its keys are transposed once for all its groups

_FMA = {"contract"}  # fuse a * b + c: changes only the last bit, and keeps each sum in its written order
_SUMS = {"contract", "reassoc"}  # also let LLVM split long sums into vector partial sums (pass 3, LayerNorm)


def _jit(**options):
    """numba.njit with an on-disk cache, or without one where no cache folder is writable (with a warning)."""
    def decorate(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as e:  # numba: "cannot cache function ...: no locator available for file ..."
            warnings.warn(f"numba cannot cache {fn.__name__} ({e}); it compiles in every process instead",
                          RuntimeWarning, stacklevel=2)
            return numba.njit(cache=False, **options)(fn)
    return decorate


# ---------------------------------------------------------------------------------------------------------------
# Elementwise pieces: exp, GELU, LayerNorm
# ---------------------------------------------------------------------------------------------------------------

@intrinsic
def _float_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits` (used for 2**n = (n + 127) << 23)."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


@intrinsic
def _max(typingctx, a, b):
    """max(a, b) of two float32 as LLVM's maxnum with no-NaN flags, which LLVM vectorizes in a reduction loop.
    Python's max compiles to compares and branches that it does not: the max over a band of 513 scores took 510
    ns a row with it, 80 ns with this. Scores are finite here (the model refuses NaN and inf inputs and weights)."""
    if a != types.float32 or b != types.float32:
        return None

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        maxnum = builder.module.declare_intrinsic("llvm.maxnum", [f32], ir.FunctionType(f32, [f32, f32]))
        return builder.call(maxnum, args, fastmath=("nnan", "nsz"))

    return types.float32(types.float32, types.float32), codegen


TILE = 32  # columns of the register tile of _tile_product: 2 vectors of 16 float32
_F32, _I64, _I32 = ir.FloatType(), ir.IntType(64), ir.IntType(32)
_V16 = ir.VectorType(_F32, 16)


@intrinsic
def _prefetch_for_writing(typingctx, addr):
    """Ask for the 64-byte line at address `addr` in the cache, to be written (LLVM's prefetch: prefetchw on x86);
    it arrives while the core computes on. A hint: no fault, whatever the address."""
    if not isinstance(addr, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        i8p = ir.IntType(8).as_pointer()
        name = "llvm.prefetch.p0"
        fn = builder.module.globals.get(name) or ir.Function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8p, _I32, _I32, _I32]), name)
        ptr = builder.inttoptr(context.cast(builder, args[0], signature.args[0], types.int64), i8p)
        builder.call(fn, [ptr, ir.Constant(_I32, 1), ir.Constant(_I32, 3), ir.Constant(_I32, 1)])  # write, keep, data
        return context.get_dummy_value()

    return types.void(addr), codegen


def _loop_not_unrolled(module):
    """Loop metadata (`!llvm.loop`) that tells LLVM not to unroll the loop whose back edge carries it: a new node
    each time, referring to itself, as LLVM wants a loop's identity. Made outside llvmlite's metadata cache and never
    an operand of another node: its hash and == follow its operands, which contain itself."""
    disable = module.add_metadata([ir.MetaDataString(module, "llvm.loop.unroll.disable")])
    loop_id = ir.values.MDValue(module, [disable], name=str(len(module.metadata)))
    loop_id.operands = (loop_id, disable)
    return loop_id


def _tile_intrinsic(vectors):
    """An intrinsic out[r, 0:16 vectors] = sum_t a[r, t] * b[t, 0:16 vectors] for the R = 12 rows r: one register tile
    of R x `vectors` vectors of 16 float32. Arguments: (out_addr, out_ld, a_addr, a_ld, b_addr, b_ld, T), float32
    arrays given by their address and row length (elements), C-contiguous, with 16 `vectors` columns readable and
    writable in every row of b and out."""

    def tile_product(typingctx, out_addr, out_ld, a_addr, a_ld, b_addr, b_ld, T):
        if not all(isinstance(x, types.Integer) for x in (out_addr, out_ld, a_addr, a_ld, b_addr, b_ld, T)):
            return None

        def codegen(context, builder, signature, args):
            out_addr, out_ld, a_addr, a_ld, b_addr, b_ld, T = (context.cast(builder, v, t, types.int64)
                                                                for v, t in zip(args, signature.args))
            fptr, vptr = _F32.as_pointer(), _V16.as_pointer()
            out, a, b = (builder.inttoptr(x, fptr) for x in (out_addr, a_addr, b_addr))
            fma = builder.module.declare_intrinsic("llvm.fma.v16f32", (), ir.FunctionType(_V16, [_V16] * 3))
            zero, at = ir.Constant(_V16, None), lambda i: ir.Constant(_I64, i)
            entry = builder.block
            loop, done = builder.append_basic_block("tile.loop"), builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", T, at(0)), loop, done)

            builder.position_at_end(loop)  # for t in range(T): sums[r][j] += a[r, t] * b[t, 16j : 16j + 16]
            t = builder.phi(_I64)
            sums = [[builder.phi(_V16) for _ in range(vectors)] for _ in range(R)]
            b_row = builder.gep(b, [builder.mul(t, b_ld)])
            b_vectors = [builder.load(builder.bitcast(builder.gep(b_row, [at(16 * j)]), vptr), align=4)
                         for j in range(vectors)]
            new_sums = []
            for r in range(R):
                a_rt = builder.load(builder.gep(a, [builder.add(builder.mul(at(r), a_ld), t)]))
                spread = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(_V16, ir.Undefined), a_rt, ir.Constant(_I32, 0)),
                    ir.Constant(_V16, ir.Undefined), ir.Constant(ir.VectorType(_I32, 16), [0] * 16))
                new_sums.append([builder.call(fma, [spread, b_vectors[j], sums[r][j]]) for j in range(vectors)])
            t_next, body_end = builder.add(t, at(1)), builder.block
            t.add_incoming(at(0), entry)
            t.add_incoming(t_next, body_end)
            for r in range(R):
                for j in range(vectors):
                    sums[r][j].add_incoming(zero, entry)
                    sums[r][j].add_incoming(new_sums[r][j], body_end)
            backedge = builder.cbranch(builder.icmp_signed("<", t_next, T), loop, done)
            backedge.set_metadata("llvm.loop", _loop_not_unrolled(builder.module))

            builder.position_at_end(done)  # out[r, 16j : 16j + 16] = sums[r][j]
            final = [[builder.phi(_V16) for _ in range(vectors)] for _ in range(R)]
            for r in range(R):
                out_row = builder.gep(out, [builder.mul(at(r), out_ld)])
                for j in range(vectors):
                    final[r][j].add_incoming(zero, entry)
                    final[r][j].add_incoming(new_sums[r][j], body_end)
                    builder.store(final[r][j], builder.bitcast(builder.gep(out_row, [at(16 * j)]), vptr), align=4)
            return context.get_dummy_value()

        return types.void(out_addr, out_ld, a_addr, a_ld, b_addr, b_ld, T), codegen

    tile_product.__name__ = f"_tile_product_{16 * vectors}"
    return intrinsic(tile_product)


# Pass 1's band (a: the 12 queries, b: 32 keys of K transposed, t: head dims) and pass 3's context (a: the 12 rows
# of probabilities, b: the value rows, t: keys) are both this product. Written as LLVM vector code, not as a loop
# for LLVM to vectorize: its vectorizer makes 256-bit loops for this CPU (its tuning prefers them) and keeps running
# sums in memory, so pass 1 ran at ~89 GFLOP/s a core, the 256-bit FMA peak. Here the 24 sums (12 rows x 2 vectors
# of 16) stay in AVX-512 registers while t runs, each t one multiply-add per sum in the written order (the numbers
# are those of the loops). On a CPU without AVX-512, LLVM splits the 512-bit vectors into narrower ones: same
# numbers, not faster. The loop is marked not to be unrolled (_loop_not_unrolled): on the AMD EPYC (Zen 5; LLVM:
# znver5) LLVM unrolled it by two, and the second step's 12 broadcasts beside the 24 sums overflowed the 32 vector
# registers: ~80 stores and loads of vectors on the stack in each pair of steps, and the row addresses reloaded from
# it. Without the unrolling the loop holds its 24 sums, 2 operand vectors and a broadcast in registers, and the whole
# band kernel took 0.60x the time at 4096 and 0.59x at 16384 tokens (paired in one process), bit-identical.
_tile_product = _tile_intrinsic(TILE // 16)
# pass 1's last keys (fewer than 32) in tiles of 16: one vector a row, 12 multiply-adds per 13 loads
_tile_product_16 = _tile_intrinsic(1)


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI, _LN2_LO = np.float32(0.693359375), np.float32(-2.12194440e-4)  # ln 2 in two parts (Cody-Waite)
_EXP_P = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                       1.6666665459e-1, 5.0000001201e-1))


# 1.5 * 2^23 + 127: in x log2(e) + _EXP_ROUND (|x log2(e)| < 2^22) the last bit is worth 1, so the sum is rounded
# to an integer, and its low bits are that integer + 127: 2^n's exponent field once shifted into place
_EXP_ROUND = np.float32(12582912.0 + 127.0)


@_jit(fastmath=_FMA, inline="always")
def _exp(x):
    """exp(x) for float32 x <= 0 (pass 2 passes score - max), vectorizable: x = n ln2 + r with n = round(x log2 e),
    |r| <= ln2 / 2; e^r by Cephes' polynomial (Horner's scheme); 2^n from its exponent bits. Relative error below
    1.2e-7. Arguments below -87 (where float32 turns subnormal) give exp(-87) ~ 1.6e-38 instead of a subnormal or
    0. Positive arguments give meaningless numbers (pass 2 replaces those it computes by 0)."""
    x = max(x, np.float32(-87.0))
    n = (x * _LOG2E + _EXP_ROUND) - _EXP_ROUND  # round(x log2 e)
    r = x - n * _LN2_HI - n * _LN2_LO
    p = _EXP_P[0]
    p = p * r + _EXP_P[1]
    p = p * r + _EXP_P[2]
    p = p * r + _EXP_P[3]
    p = p * r + _EXP_P[4]
    p = p * r + _EXP_P[5]
    p = p * r + np.float32(1.0)
    p = p * r + np.float32(1.0)  # 1 + r + r^2 P(r)
    return p * _float_from_bits(np.int32((np.int32(n) + 127) << 23))


@intrinsic
def _exp_row(typingctx, row_addr, n, top):
    """row[m] = _exp(row[m] - top) for m < n, n a multiple of 16, in place, and the sum of the results: the bulk
    of pass 2's exponentials. row: float32 array given by its address; row[m] - top <= 0.

    _exp's steps on 16 floats at a time, as LLVM vector code: LLVM's vectorizer makes 256-bit loops for this CPU
    (see _tile_intrinsic). 2^n is the shifted bits of x log2(e) + _EXP_ROUND, not a conversion of n to an integer:
    16 vector operations for 16 exponentials instead of 20 (with the clamp at 0 that x <= 0 makes needless, and
    Horner's scheme to the end): pass 2's exponentials 122 -> 89 ns a row of 512. The sum runs in 16 lanes, then
    across them: another order than the loop's, the same float32 rounding at each step.
    """
    if not (isinstance(row_addr, types.Integer) and isinstance(n, types.Integer) and top == types.float32):
        return None

    def codegen(context, builder, signature, args):
        row_addr, n = (context.cast(builder, v, t, types.int64) for v, t in zip(args[:2], signature.args[:2]))
        i32x16 = ir.VectorType(_I32, 16)
        splat = lambda x: ir.Constant(_V16, [float(x)] * 16)
        fn = {name: builder.module.declare_intrinsic(f"llvm.{name}.v16f32", (), ir.FunctionType(_V16, [_V16] * k))
              for name, k in (("fma", 3), ("maxnum", 2))}
        row = builder.inttoptr(row_addr, _F32.as_pointer())
        top = builder.shuffle_vector(builder.insert_element(ir.Constant(_V16, ir.Undefined), args[2],
                                                            ir.Constant(_I32, 0)),
                                     ir.Constant(_V16, ir.Undefined), ir.Constant(i32x16, [0] * 16))
        zero, at = ir.Constant(_V16, None), lambda i: ir.Constant(_I64, i)
        entry = builder.block
        loop, done = builder.append_basic_block("exp.loop"), builder.append_basic_block("exp.done")
        builder.cbranch(builder.icmp_signed(">", n, at(0)), loop, done)

        builder.position_at_end(loop)  # for m in range(0, n, 16): row[m : m + 16] = _exp(row[m : m + 16] - top)
        m, total = builder.phi(_I64), builder.phi(_V16)
        at_m = builder.bitcast(builder.gep(row, [m]), _V16.as_pointer())
        x = builder.fsub(builder.load(at_m, align=4), top)
        x = builder.call(fn["maxnum"], [x, splat(-87.0)])
        rounded = builder.call(fn["fma"], [x, splat(_LOG2E), splat(_EXP_ROUND)])  # n + 127 in its low bits
        n_f = builder.fsub(rounded, splat(_EXP_ROUND))
        r = builder.call(fn["fma"], [n_f, splat(-_LN2_HI), x])
        r = builder.call(fn["fma"], [n_f, splat(-_LN2_LO), r])
        p = splat(_EXP_P[0])
        for c in _EXP_P[1:] + (1.0, 1.0):
            p = builder.call(fn["fma"], [p, r, splat(c)])
        exponent = builder.shl(builder.bitcast(rounded, i32x16), ir.Constant(i32x16, [23] * 16))
        e = builder.fmul(p, builder.bitcast(exponent, _V16))  # p 2^n
        builder.store(e, at_m, align=4)
        new_total = builder.fadd(total, e)
        m_next, body_end = builder.add(m, at(16)), builder.block
        m.add_incoming(at(0), entry)
        m.add_incoming(m_next, body_end)
        total.add_incoming(zero, entry)
        total.add_incoming(new_total, body_end)
        builder.cbranch(builder.icmp_signed("<", m_next, n), loop, done)

        builder.position_at_end(done)  # the 16 lanes' sums added up
        lanes = builder.phi(_V16)
        lanes.add_incoming(zero, entry)
        lanes.add_incoming(new_total, body_end)
        result = ir.Constant(_F32, 0.0)
        for lane in range(16):
            result = builder.fadd(result, builder.extract_element(lanes, ir.Constant(_I32, lane)))
        return result

    return types.float32(row_addr, n, top), codegen


_P = tuple(np.float32(c) for c in ERF_P)
_Q = tuple(np.float32(c) for c in ERF_Q)


@_jit(fastmath=_FMA, inline="always")
def _gelu1(x):
    """x * Phi(x) with the reference's rational erf (refimpl.ops.erf): clamp, then p(z^2) * z / q(z^2)."""
    z = min(max(x * np.float32(1 / math.sqrt(2)), np.float32(-ERF_CLAMP)), np.float32(ERF_CLAMP))
    z2 = z * z
    p = (((((_P[0] * z2 + _P[1]) * z2 + _P[2]) * z2 + _P[3]) * z2 + _P[4]) * z2 + _P[5]) * z2 + _P[6]
    q = (((_Q[0] * z2 + _Q[1]) * z2 + _Q[2]) * z2 + _Q[3]) * z2 + _Q[4]
    return x * np.float32(0.5) * (np.float32(1.0) + z * p / q)


@intrinsic
def _gelu_row(typingctx, x_addr, bias_addr, n):
    """x[f] = _gelu1(x[f] + bias[f]) for f < n, n a multiple of 16, in place: _gelu1's steps 16 at a time as LLVM
    vector code (LLVM's own loop ran in 256-bit vectors, see _tile_intrinsic). x, bias: float32 arrays by address."""
    if not all(isinstance(a, types.Integer) for a in (x_addr, bias_addr, n)):
        return None

    def codegen(context, builder, signature, args):
        x_addr, bias_addr, n = (context.cast(builder, v, t, types.int64) for v, t in zip(args, signature.args))
        splat = lambda c: ir.Constant(_V16, [float(c)] * 16)
        fn = {name: builder.module.declare_intrinsic(f"llvm.{name}.v16f32", (), ir.FunctionType(_V16, [_V16] * k))
              for name, k in (("fma", 3), ("maxnum", 2), ("minnum", 2))}
        x_row, bias = (builder.inttoptr(a, _F32.as_pointer()) for a in (x_addr, bias_addr))
        at = lambda i: ir.Constant(_I64, i)
        entry = builder.block
        loop, done = builder.append_basic_block("gelu.loop"), builder.append_basic_block("gelu.done")
        builder.cbranch(builder.icmp_signed(">", n, at(0)), loop, done)

        builder.position_at_end(loop)  # for f in range(0, n, 16): x[f : f + 16] = gelu(x[f : f + 16] + bias[...])
        f = builder.phi(_I64)
        at_x = builder.bitcast(builder.gep(x_row, [f]), _V16.as_pointer())
        at_bias = builder.bitcast(builder.gep(bias, [f]), _V16.as_pointer())
        x = builder.fadd(builder.load(at_x, align=4), builder.load(at_bias, align=4))
        z = builder.fmul(x, splat(np.float32(1 / math.sqrt(2))))
        z = builder.call(fn["minnum"], [builder.call(fn["maxnum"], [z, splat(-ERF_CLAMP)]), splat(ERF_CLAMP)])
        z2 = builder.fmul(z, z)
        p, q = splat(_P[0]), splat(_Q[0])
        for c in _P[1:]:
            p = builder.call(fn["fma"], [p, z2, splat(c)])
        for c in _Q[1:]:
            q = builder.call(fn["fma"], [q, z2, splat(c)])
        erf = builder.fdiv(builder.fmul(z, p), q)
        builder.store(builder.fmul(builder.fmul(x, splat(0.5)), builder.fadd(splat(1.0), erf)), at_x, align=4)
        f_next = builder.add(f, at(16))
        f.add_incoming(at(0), entry)
        f.add_incoming(f_next, builder.block)
        builder.cbranch(builder.icmp_signed("<", f_next, n), loop, done)

        builder.position_at_end(done)
        return context.get_dummy_value()

    return types.void(x_addr, bias_addr, n), codegen


@_jit(parallel=True, fastmath=_FMA)
def _gelu_kernel(x, bias):
    """x = gelu(x + bias) in place, x (rows, F), bias (F,) (zeros for plain GELU). In place, because LLVM vectorizes
    a loop over two arrays only after a runtime check that they do not overlap, and the model's call writes into
    its input."""
    rows, F = x.shape
    bulk = F // 16 * 16
    for r in prange(rows):
        x_row = x[r]
        _gelu_row(x_row.ctypes.data, bias.ctypes.data, bulk)  # 16 at a time, then the last few
        tail, tail_bias = x_row[bulk:], bias[bulk:]
        for f in range(tail.shape[0]):
            tail[f] = _gelu1(tail[f] + tail_bias[f])


SPLIT_ROWS = 16  # rows of the product per job of _split_heads


@_jit(parallel=True, fastmath=_FMA)
def _split_heads(y, bias, scale, out, start):
    """out[b, h, start:start + rows] = ((y + bias) * scale)[b, :, h D : (h + 1) D]: rows of a projection's product
    y (B, rows, C), its bias (C,) and scale into the heads out (B, H, N, D), from row `start` on. One job per
    SPLIT_ROWS rows, which it reads once, row after row, into the H heads. (One job per head, each reading its D
    columns of every row, took 2.3 ms more than the product alone at 4096 x 768, this 1.5.)"""
    B, H, N, D = out.shape
    rows = y.shape[1]
    blocks = -(-rows // SPLIT_ROWS)
    for job in prange(B * blocks):
        b, first = job // blocks, job % blocks * SPLIT_ROWS
        for h in range(H):
            head_bias = bias[h * D:(h + 1) * D]
            for i in range(first, min(first + SPLIT_ROWS, rows)):
                y_row, out_row = y[b, i, h * D:(h + 1) * D], out[b, h, start + i]
                for d in range(D):
                    out_row[d] = (y_row[d] + head_bias[d]) * scale


@_jit(parallel=True, fastmath=_SUMS)
def _layer_norm_kernel(x, x_bias, residual, add_residual, weight, bias, eps, out):
    """out = LayerNorm(x + x_bias + residual) (or of x alone) over the last axis, per row; x, residual, out
    (rows, C), x_bias (C,). Two passes (the mean, then the biased variance), as the reference."""
    rows, C = x.shape
    for r in prange(rows):
        x_row, residual_row, o = x[r], residual[r], out[r]
        total = np.float32(0.0)
        if add_residual:  # loops, not o[:] = x[r]; o += residual[r]: Numba's array assignments go item by item
            for c in range(C):
                o[c] = x_row[c] + x_bias[c] + residual_row[c]
                total += o[c]
        else:
            for c in range(C):
                o[c] = x_row[c]
                total += o[c]
        mean = total / np.float32(C)
        sq = np.float32(0.0)
        for c in range(C):
            sq += (o[c] - mean) * (o[c] - mean)
        inv = np.float32(1.0) / np.sqrt(sq / np.float32(C) + eps)
        for c in range(C):
            o[c] = (o[c] - mean) * inv * weight[c] + bias[c]


# ---------------------------------------------------------------------------------------------------------------
# Passes 1-3 for one group of R = 12 queries i0 .. i0+11, which together see the keys jlo .. jlo+M-1
# ---------------------------------------------------------------------------------------------------------------

@_jit(fastmath=_FMA)
def _pass1_band_scores(scores, q_group, kT, jlo, m_keys):
    """Pass 1, band part: scores[r, m] = q_group[r] . k[jlo + m] for the R = 12 queries and all M keys of the group.

    q_group (R, D); kT (D, keys), K transposed so that the keys are contiguous; scores (R, >= M rounded up to 16),
    all C-contiguous. A query's scores against keys outside its own band are computed too (at most R - 1 of M) and
    masked in pass 2. All in register tiles: whole tiles of 32 keys, then tiles of 16; the last one reads up to 15
    columns of kT past the group's keys (the job's buffer has them, zeros) and writes as many past M into scores
    (unread).
    """
    D = q_group.shape[1]
    m0 = 0
    while m0 + TILE <= m_keys:
        _tile_product(scores.ctypes.data + 4 * m0, scores.shape[1], q_group.ctypes.data, D,
                      kT.ctypes.data + 4 * (jlo + m0), kT.shape[1], D)
        m0 += TILE
    while m0 < m_keys:
        _tile_product_16(scores.ctypes.data + 4 * m0, scores.shape[1], q_group.ctypes.data, D,
                         kT.ctypes.data + 4 * (jlo + m0), kT.shape[1], D)
        m0 += 16


@_jit(fastmath=_SUMS)
def _pass1_global_scores(scores_g, q_group, k, global_index, n_global):
    """Pass 1, global part: scores_g[r, g] = q_group[r] . k[global_index[g]] (the *local* key projection, as
    transformers). k (N, D); scores_g (R, G); filler slots g >= n_global are left for pass 2 to zero."""
    D = q_group.shape[1]
    for g in range(n_global):
        kg = k[global_index[g]]
        for r in range(R):
            acc = np.float32(0.0)
            for d in range(D):
                acc += q_group[r, d] * kg[d]
            scores_g[r, g] = acc


@_jit(fastmath=_SUMS)
def _pass2_softmax(row, row_g, kind, n_global, all_local):
    """Pass 2 for one local query: one softmax over its global columns and its band keys, in place, but for the
    division: the scores become exp(score - max), and 1 / their sum is returned (the caller scales the context,
    R x D numbers, instead of the probabilities, G + 2W+1 of them).

    row (2W+1 or fewer,) the scores of the band keys inside the sequence, kind (same length) their kinds. A band
    key is visible when it is local (kind 1): padding and global keys (they have their own column) get 0.
    all_local: every key of the row is local (the common case), so the kinds need not be read.
    row_g (G,) global scores; filler slots g >= n_global get 0. The query is local, so it sees itself: sum >= 1.
    Loops start at 0 on sliced views, so that Numba emits no negative-index wraparound and LLVM vectorizes them.
    """
    top = MASKED  # the masked score of the reference: below every real score
    for g in range(n_global):
        top = _max(top, row_g[g])
    if all_local:
        for m in range(row.shape[0]):
            top = _max(top, row[m])
    else:
        for m in range(row.shape[0]):
            top = _max(top, row[m] if kind[m] == LOCAL else MASKED)
    total = np.float32(0.0)
    for g in range(row_g.shape[0]):
        e = _exp(row_g[g] - top)
        e = e if g < n_global else np.float32(0.0)
        row_g[g] = e
        total += e
    if all_local:  # the common case: 16 keys at a time in 512-bit vectors, the last few in the loop
        bulk = row.shape[0] // 16 * 16
        total += _exp_row(row.ctypes.data, bulk, top)
        tail = row[bulk:]
        for m in range(tail.shape[0]):
            e = _exp(tail[m] - top)
            tail[m] = e
            total += e
    else:
        for m in range(row.shape[0]):
            e = _exp(row[m] - top)  # computed for every key, then selected: a branch would stop vectorization
            e = e if kind[m] == LOCAL else np.float32(0.0)
            row[m] = e
            total += e
    return np.float32(1.0) / total


@_jit(fastmath=_FMA)
def _pass3_band_context_tiled(context_group, probs, v, jlo, m_keys):
    """Pass 3, band part, for head sizes that are a multiple of 32: context_group[r, d] = sum_m probs[r, m] *
    v[jlo + m, d] as register tiles of 32 head dims (_tile_product), straight from v (N, D) (no transpose).
    probs (R, >= M), 0 outside each query's band; context_group (R, D)."""
    D = v.shape[1]
    for d0 in range(0, D, TILE):
        _tile_product(context_group.ctypes.data + 4 * d0, D, probs.ctypes.data, probs.shape[1],
                      v.ctypes.data + 4 * (jlo * D + d0), D, m_keys)


@_jit(fastmath=_SUMS)
def _pass3_band_context(out, probs, vT, jlo, m_keys):
    """Pass 3, band part: out[r, d] = sum_m probs[r, m] * v[jlo + m, d] for 4 of the group's queries r.

    probs (R, >= M), 0 outside each query's band; vT (D, keys), V transposed so that the sum runs along contiguous
    memory. Sixteen running sums (4 queries x 4 head dims) per sweep over the keys: 16 multiply-adds per 8 loads.
    """
    D = vT.shape[0]
    p0, p1, p2, p3 = probs[0, :m_keys], probs[1, :m_keys], probs[2, :m_keys], probs[3, :m_keys]
    d = 0
    while d + 4 <= D:
        v0, v1, v2, v3 = vT[d, jlo:jlo + m_keys], vT[d + 1, jlo:jlo + m_keys], vT[d + 2, jlo:jlo + m_keys], \
            vT[d + 3, jlo:jlo + m_keys]
        c00 = c01 = c02 = c03 = c10 = c11 = c12 = c13 = np.float32(0.0)
        c20 = c21 = c22 = c23 = c30 = c31 = c32 = c33 = np.float32(0.0)
        for m in range(m_keys):
            x0, x1, x2, x3 = v0[m], v1[m], v2[m], v3[m]
            y0, y1, y2, y3 = p0[m], p1[m], p2[m], p3[m]
            c00 += y0 * x0
            c01 += y0 * x1
            c02 += y0 * x2
            c03 += y0 * x3
            c10 += y1 * x0
            c11 += y1 * x1
            c12 += y1 * x2
            c13 += y1 * x3
            c20 += y2 * x0
            c21 += y2 * x1
            c22 += y2 * x2
            c23 += y2 * x3
            c30 += y3 * x0
            c31 += y3 * x1
            c32 += y3 * x2
            c33 += y3 * x3
        out[0, d], out[0, d + 1], out[0, d + 2], out[0, d + 3] = c00, c01, c02, c03
        out[1, d], out[1, d + 1], out[1, d + 2], out[1, d + 3] = c10, c11, c12, c13
        out[2, d], out[2, d + 1], out[2, d + 2], out[2, d + 3] = c20, c21, c22, c23
        out[3, d], out[3, d + 1], out[3, d + 2], out[3, d + 3] = c30, c31, c32, c33
        d += 4
    while d < D:  # head sizes that are not a multiple of 4
        v0 = vT[d, jlo:jlo + m_keys]
        c0 = c1 = c2 = c3 = np.float32(0.0)
        for m in range(m_keys):
            c0 += p0[m] * v0[m]
            c1 += p1[m] * v0[m]
            c2 += p2[m] * v0[m]
            c3 += p3[m] * v0[m]
        out[0, d], out[1, d], out[2, d], out[3, d] = c0, c1, c2, c3
        d += 1


@_jit(fastmath=_FMA)
def _pass3_global_context(context_group, probs_g, v, global_index, n_global):
    """Pass 3, global part: context_group[r] += sum_g probs_g[r, g] * v[global_index[g]]. v (N, D)."""
    D = v.shape[1]
    for g in range(n_global):
        vg = v[global_index[g]]
        for r in range(R):
            p = probs_g[r, g]
            for d in range(D):
                context_group[r, d] += p * vg[d]


# ---------------------------------------------------------------------------------------------------------------
# The kernel: every (batch row, head, block of queries) is one job of the parallel loop
# ---------------------------------------------------------------------------------------------------------------

@_jit(fastmath=_FMA)
def _transpose(x, out):
    """x (M, D) -> out (D, M): keys or values with the keys contiguous, as passes 1 and 3 read them."""
    M, D = x.shape
    for j0 in range(0, M, 16):  # 16 keys at a time: 16 rows of x in, D runs of 16 contiguous floats out
        tile = x[j0:j0 + 16]
        for d in range(D):
            out_run = out[d, j0:j0 + 16]
            for j in range(tile.shape[0]):
                out_run[j] = tile[j, d]


@_jit(parallel=True, fastmath=_FMA)
def _sliding_window_attention(q, k, v, kind, global_index, n_global, w, causal, want_probs, context, probs):
    """Passes 1-3 for every local query; context (B, N, H, D) (the heads side by side: the layout the model merges
    them into) and, when want_probs, probs (B, H, N, G+S) are written in full (rows of padding and global queries
    are 0). S = 2W+1 band slots, or W+1 when `causal` (the autoregressive window: query i sees the keys i-W .. i).

    One job is one (batch row, head, block of QB queries). It first transposes the keys and values its queries can
    see (QB + 2W of them) into its own (D, QB + 2W) buffers, then runs passes 1-3 group by group.
    """
    B, H, N, D = q.shape
    G = global_index.shape[1]
    QB = -(-max(BLOCK, 2 * w) // R) * R  # queries per job, a multiple of R: at most 2x the transposes of the keys
    n_blocks = (N + QB - 1) // QB
    for job in prange(B * H * n_blocks):
        b, h, block = job // (H * n_blocks), (job // n_blocks) % H, job % n_blocks
        ng = n_global[b]
        first, last = block * QB, min(N, block * QB + QB)  # queries first .. last - 1
        key0 = max(first - w, 0)  # keys key0 .. key_end - 1 are all the block's queries can see
        key_end = min(last + w, N)
        tiled = D % TILE == 0  # pass 3 in register tiles, from v as it is; else from V transposed
        # K transposed, with room for pass 1's last tile of 16 (up to 15 zeros past the keys), its rows an odd number
        # of 64-byte lines long: rows a multiple of 2 lines apart share cache sets
        row = (key_end - key0 + 15 + 15) // 16 * 16
        row += 16 if row % 32 == 0 else 0
        kT = np.empty((D, row), np.float32)  # (D, QB + 2W + 15, or up to 31 more)
        kT[:, key_end - key0:] = 0
        vT = np.empty((D, 0 if tiled else key_end - key0), np.float32)  # (D, QB + 2W)
        _transpose(k[b, h, key0:key_end], kT)
        if not tiled:
            _transpose(v[b, h, key0:key_end], vT)
        max_keys = min(2 * w + R, N)  # M: the most keys one group of R queries can see
        scores = np.empty((R, (max_keys + 15) // 16 * 16), np.float32)  # (R, M up to 16s): the band, by key jlo + m
        scores_g = np.empty((R, G), np.float32)  # (R, G)
        q_group = np.zeros((R, D), np.float32)  # (R, D): the group's queries (a last, short group leaves some unused)
        context_group = np.empty((R, D), np.float32)  # (R, D)
        inv_sum = np.zeros(R, np.float32)  # (R,): 1 / each query's sum of exp, 0 for a row that is not local
        for i0 in range(first, last, R):
            rows = min(R, last - i0)
            n_local = 0
            for r in range(rows):
                n_local += kind[b, i0 + r] == LOCAL
            if n_local == 0:  # padding or global queries only: their rows are 0
                context[b, i0:i0 + rows, h] = 0
                if want_probs:
                    probs[b, h, i0:i0 + rows] = 0
                continue
            for r in range(rows):  # the lines the group's context rows go to, asked for now, written in pass 3
                for byte in range(0, 4 * D, 64):
                    _prefetch_for_writing(context[b, i0 + r, h].ctypes.data + byte)
            jlo = max(i0 - w, 0)
            ahead = 0 if causal else w  # how far past the query its band reaches
            m_keys = min(i0 + rows + ahead, N) - jlo  # keys jlo .. jlo + M - 1: the union of the groups' bands
            for r in range(rows):  # loops: Numba's slice assignment goes item by item through its indexer
                q_row, group_row = q[b, h, i0 + r], q_group[r]
                for d in range(D):
                    group_row[d] = q_row[d]

            # pass 1: scores of each query against its 2W+1 neighbours (and R - 1 more) and the global keys
            _pass1_band_scores(scores, q_group, kT, jlo - key0, m_keys)
            _pass1_global_scores(scores_g, q_group, k[b, h], global_index[b], ng)

            # pass 2: softmax over the columns each query may see (its division below); other queries' rows are 0
            group_kinds, not_local = kind[b, jlo:jlo + m_keys], 0
            for m in range(m_keys):
                not_local += group_kinds[m] != LOCAL
            for r in range(R):
                i = i0 + r
                if r < rows and kind[b, i] == LOCAL:
                    m_lo, m_hi = max(i - w, 0) - jlo, min(i + ahead + 1, N) - jlo  # the query's own band
                    scores[r, :m_lo] = 0
                    inv_sum[r] = _pass2_softmax(scores[r, m_lo:m_hi], scores_g[r], group_kinds[m_lo:m_hi], ng,
                                                not_local == 0)
                    scores[r, m_hi:m_keys] = 0
                else:
                    scores[r] = 0
                    scores_g[r] = 0
                    inv_sum[r] = 0

            # pass 3: weighted sum of the values, band and global columns, then pass 2's division
            if tiled:
                _pass3_band_context_tiled(context_group, scores, v[b, h], jlo, m_keys)
            else:  # the loops take 4 queries at a time
                for r0 in range(0, R, 4):
                    _pass3_band_context(context_group[r0:r0 + 4], scores[r0:r0 + 4], vT, jlo - key0, m_keys)
            _pass3_global_context(context_group, scores_g, v[b, h], global_index[b], ng)
            for r in range(rows):  # a loop, not `context_group[r] * inv_sum[r]`: Numba would allocate that array
                out_row, group_row, scale = context[b, i0 + r, h], context_group[r], inv_sum[r]
                for d in range(D):
                    out_row[d] = group_row[d] * scale

            if want_probs:  # the (G + S) layout: global columns, then band slot t = key i + t - W
                for r in range(rows):
                    i = i0 + r
                    out = probs[b, h, i]
                    out[:] = 0
                    if kind[b, i] == LOCAL:
                        out[:G] = scores_g[r] * inv_sum[r]
                        m_lo, m_hi = max(i - w, 0) - jlo, min(i + ahead + 1, N) - jlo
                        t0 = jlo + m_lo - i + w
                        out[G + t0:G + t0 + m_hi - m_lo] = scores[r, m_lo:m_hi] * inv_sum[r]


# ---------------------------------------------------------------------------------------------------------------
# OpenBLAS's idle threads (see the module docstring, Threads)
# ---------------------------------------------------------------------------------------------------------------

OPENBLAS_TIMEOUT_CYCLES = 1 << 4  # what OPENBLAS_THREAD_TIMEOUT=4 (OpenBLAS's smallest) sets: sleep at once


def _elf_symbols(path: str, names: set[str]) -> dict[str, int]:
    """The st_value (address relative to the load base) of the named symbols of an ELF64 little-endian file's
    .symtab, the full symbol table that also lists a library's static variables (empty where it was stripped)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:  # ELF, 64-bit, little-endian
        return {}
    section_offset, = struct.unpack_from("<Q", data, 0x28)
    entry_size, count = struct.unpack_from("<HH", data, 0x3A)
    # each section header: name, type, flags, addr, offset, size, link, info, addralign, entsize
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, section_offset + i * entry_size) for i in range(count)]
    found = {}
    for _, kind, _, _, offset, size, link, _, _, sym_size in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strings = sections[link][4]  # the string table holding the symbols' names
        for j in range(size // sym_size):
            # each symbol: name offset, info, other, section index, value, size
            name_at, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, offset + j * sym_size)
            name = data[strings + name_at:data.index(b"\0", strings + name_at)].decode(errors="replace")
            if name in names:
                found[name] = value
    return found


def openblas_thread_timeouts() -> list[tuple[str, ctypes.c_uint | None]]:
    """(path, its `thread_timeout` as a writable ctypes.c_uint, or None where it cannot be found) for every loaded
    pthreads OpenBLAS. Raises ImportError without threadpoolctl."""
    import threadpoolctl

    found = []
    for lib in threadpoolctl.ThreadpoolController().lib_controllers:
        if lib.internal_api != "openblas" or lib.threading_layer != "pthreads":
            continue  # an OpenMP build's threads follow OMP_WAIT_POLICY (set above)
        symbols = _elf_symbols(lib.filepath, {"thread_timeout", "openblas_thread_timeout"})
        exported = getattr(lib.dynlib, "openblas_thread_timeout", None)
        if len(symbols) < 2 or exported is None:
            found.append((lib.filepath, None))
            continue
        # the load base is where an exported function is minus its place in the file
        base = ctypes.cast(exported, ctypes.c_void_p).value - symbols["openblas_thread_timeout"]
        found.append((lib.filepath, ctypes.c_uint.from_address(base + symbols["thread_timeout"])))
    return found


def quiet_openblas_threads() -> list[str]:
    """Make every loaded pthreads OpenBLAS put its idle threads to sleep at once instead of spinning 2^28 cycles.

    Writes OPENBLAS_TIMEOUT_CYCLES into the library's `thread_timeout`, the variable OPENBLAS_THREAD_TIMEOUT sets
    when the library loads. Returns one line per library found, saying what was done; warns where nothing could be.
    Leaves everything alone when the user set OPENBLAS_THREAD_TIMEOUT.
    """
    if os.environ.get("OPENBLAS_THREAD_TIMEOUT"):
        return [f"OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']} set by the user: left alone"]
    try:
        timeouts = openblas_thread_timeouts()
    except ImportError:
        warnings.warn("threadpoolctl is not installed, so the numba backend cannot stop OpenBLAS's idle threads "
                      "from spinning after each product (they slow its kernels ~1.5x on few cores); pip install "
                      "threadpoolctl, or start Python with OPENBLAS_THREAD_TIMEOUT=4", RuntimeWarning, stacklevel=3)
        return ["threadpoolctl not installed: OpenBLAS untouched"]
    done = []
    for path, timeout in timeouts:
        if timeout is None:
            warnings.warn(f"{path}: no symbol table with thread_timeout, so its idle threads keep spinning after "
                          "each product; start Python with OPENBLAS_THREAD_TIMEOUT=4 to stop them",
                          RuntimeWarning, stacklevel=3)
            done.append(f"{path}: thread_timeout not found, untouched")
            continue
        before = timeout.value
        if before & (before - 1) or not 1 << 4 <= before <= 1 << 30:
            # OpenBLAS keeps 2^k cycles with 4 <= k <= 30 there; anything else means the address is not that variable
            warnings.warn(f"{path}: the value at thread_timeout's address is {before}, not a timeout OpenBLAS would "
                          "set; nothing written. Start Python with OPENBLAS_THREAD_TIMEOUT=4 to stop the spinning",
                          RuntimeWarning, stacklevel=3)
            done.append(f"{path}: thread_timeout reads {before}, untouched")
            continue
        timeout.value = OPENBLAS_TIMEOUT_CYCLES
        done.append(f"{path}: thread_timeout {before} -> {OPENBLAS_TIMEOUT_CYCLES} cycles")
    return done


# ---------------------------------------------------------------------------------------------------------------
# The backend
# ---------------------------------------------------------------------------------------------------------------

FFN_BLOCK_BYTES = 30 << 20  # below glibc's 32 MiB mmap ceiling (NumbaBackend.feed_forward_rows, project)


def _block_rows(n_rows, row_bytes):
    """Rows per block that keep a (rows, ...) block of row_bytes a row under FFN_BLOCK_BYTES, the n_rows split into
    blocks of equal size (n_rows itself when it fits; at least 1)."""
    blocks = max(1, -(-(n_rows * row_bytes) // FFN_BLOCK_BYTES))  # ceil
    return max(1, -(-n_rows // blocks))


REUSE_BYTES = (FFN_BLOCK_BYTES, 64 << 20)  # sizes of the arrays the backend keeps for its next call (_Reused)


class _Reused(threading.local):
    """The backend's largest arrays (q, k, v and the context), kept for its next call of the same shape.

    glibc's malloc maps every block above its mmap ceiling (32 MiB at most) afresh and unmaps it when it is freed,
    so at 16384 tokens each (N, C) array of every layer is ~50 MB of fresh pages, faulted in and zeroed on first
    touch: ~20 ms of the attention layer's ~340 ms. Per thread, this keeps the last array made for each use when its
    size lies in REUSE_BYTES, and hands it out again only when nobody else holds it: sys.getrefcount counts every
    reference, and a view holds its base, so an array still in use anywhere is never written over. Arrays below the
    ceiling are malloc's to reuse; those above the cap are made anew, so that at most 4 x 64 MiB stay with a thread.
    """

    def __init__(self):
        self.arrays = {}

    def empty(self, use, shape):
        """An uninitialised float32 array of `shape` (the caller writes all of it)."""
        if not REUSE_BYTES[0] < 4 * math.prod(shape) <= REUSE_BYTES[1]:
            return np.empty(shape, np.float32)
        a = self.arrays.get(use)
        if a is not None and a.shape == shape and sys.getrefcount(a) == 3:  # self.arrays, a, getrefcount's argument
            return a
        a = self.arrays[use] = np.empty(shape, np.float32)
        return a


def _float32(a, name):
    """a as a C-contiguous float32 NumPy array; another dtype is a caller's bug, not something to convert."""
    a = np.asarray(a)
    if a.dtype != np.float32:
        raise TypeError(f"{name} must be float32, got {a.dtype}")
    return np.ascontiguousarray(a)


class NumbaBackend(NumpyBackend):
    """NumPy arrays; the band attention, GELU and LayerNorm as Numba kernels (see the module docstring)."""

    name = "numba"

    def __init__(self):
        self.openblas = quiet_openblas_threads()  # what was done to OpenBLAS's idle threads, one line per library
        self._pauses = _openmp_pauses()  # OpenMP runtimes loaded before this module (see _SPINNING_OPENMP)
        self.openmp = [f"{path}: loaded before the numba backend, paused after each kernel" for path, _ in self._pauses]
        self._reused = _Reused()  # q, k, v and the context above malloc's mmap ceiling, for the next call

    def _parallel(self, kernel, *args):
        """kernel(*args), then a pause of every OpenMP runtime that would spin after it (see _SPINNING_OPENMP)."""
        kernel(*args)
        for _, pause in self._pauses:
            pause(OMP_PAUSE_SOFT)

    def sliding_window_attention(self, q, k, v, kind, global_index, n_global, w, output_attentions, dilation=1,
                                 autoregressive=False):
        """The contract of refimpl.backends.base.Backend: context (B, H, N, D), probs (B, H, N, G+S) or None.

        A head of dilation d > 1 runs the plain kernel on each of its d interleaved subsequences x[r::d], as the
        reference does (refimpl/attention.py): the keys of query i are all congruent to i modulo d. The G global
        keys are appended to each subsequence as padding tokens (so that no band sees them) and its global columns
        point at them; the rows of the subsequences are written back into place. Measured at 4096 tokens, 12
        heads of 64, W = 256, 2 cores: plain 65 ms, dilation 2 on every head 77 ms (1.19x: the copies in and
        out), dilations 1-4 per head 87 ms (1.33x), autoregressive 38 ms (its band is half as wide).
        """
        B, H, N, D, G, w = check_attention_inputs(q, k, v, kind, global_index, n_global, w, dilation, autoregressive)
        dilations = head_dilations(dilation, H)
        q, k, v = _float32(q, "q"), _float32(k, "k"), _float32(v, "v")
        kind = np.ascontiguousarray(kind, dtype=np.int8)  # (B, N)
        global_index = np.ascontiguousarray(global_index, dtype=np.int64)  # (B, G)
        n_global = np.ascontiguousarray(n_global, dtype=np.int64)  # (B,)
        S = w + 1 if autoregressive else 2 * w + 1
        # (B, N, H, D), returned as its (B, H, N, D) view: the model's merge of the heads into (B, N, C) is then free
        context = self._reused.empty("context", (B, N, H, D))
        probs = np.empty((B, H, N, G + S) if output_attentions else (0, 0, 0, 0), np.float32)  # (B, H, N, G+S)
        if set(dilations) == {1}:
            self._parallel(_sliding_window_attention, q, k, v, kind, global_index, n_global, w, bool(autoregressive),
                           bool(output_attentions), context, probs)
            return context.transpose(0, 2, 1, 3), (probs if output_attentions else None)
        for d in sorted(set(dilations)):
            heads = [h for h in range(H) if dilations[h] == d]
            for r in range(min(d, N)):  # the subsequence r, r + d, r + 2d, ...
                sub = self._dilated_subsequence(q, k, v, kind, global_index, heads, r, d)
                n_sub = sub[3].shape[1] - G
                ctx = np.empty((B, n_sub + G, len(heads), D), np.float32)
                prb = np.empty((B, len(heads), n_sub + G, G + S) if output_attentions else (0, 0, 0, 0), np.float32)
                self._parallel(_sliding_window_attention, *sub, n_global, w, bool(autoregressive),
                               bool(output_attentions), ctx, prb)
                for j, h in enumerate(heads):
                    context[:, r::d, h] = ctx[:, :n_sub, j]
                    if output_attentions:
                        probs[:, h, r::d] = prb[:, j, :n_sub]
        return context.transpose(0, 2, 1, 3), (probs if output_attentions else None)

    @staticmethod
    def _dilated_subsequence(q, k, v, kind, global_index, heads, r, d):
        """q, k, v (B, h, n + G, D), kind (B, n + G), global_index (B, G) of the subsequence r::d of `heads`, with
        the G global tokens' keys and values appended as padding rows that the global columns point at. One copy
        per array, head by head (a list of heads as an index would copy twice)."""
        B, H, N, D = q.shape
        G = global_index.shape[1]
        n = len(range(r, N, d))
        q_sub, k_sub, v_sub = (np.empty((B, len(heads), n + G, D), np.float32) for _ in range(3))  # (B, h, n+G, D)
        q_sub[:, :, n:] = 0
        for j, h in enumerate(heads):
            for x, x_sub in ((q, q_sub), (k, k_sub), (v, v_sub)):
                x_sub[:, j, :n] = x[:, h, r::d]
            for x, x_sub in ((k, k_sub), (v, v_sub)):
                x_sub[:, j, n:] = np.take_along_axis(x[:, h], global_index[:, :, None], axis=1)  # (B, G, D)
        kind_sub = np.concatenate([kind[:, r::d], np.full((B, G), PADDING, np.int8)], axis=1)  # (B, n + G)
        index_sub = np.broadcast_to(n + np.arange(G), (B, G)).copy()  # (B, G)
        return q_sub, k_sub, v_sub, kind_sub, index_sub

    def global_attention(self, q_g, hidden, kv_global, kind, slot_used):
        """Pass 4 with key_global and value_global folded into the few global queries, when that is cheaper.

        The reference projects all N tokens through key_global and value_global (2 N C^2 multiply-adds) for the
        sake of G queries. Folding the projections into the queries instead:
            scores_g = q_g . (x W_k,h^T + b_k,h)   = (q_g W_k,h) x^T + q_g . b_k,h
            context_g = probs_g (x W_v,h^T + b_v,h) = (probs_g x) W_v,h^T + (sum of probs_g) b_v,h
        costs about 2 G H N C, so it pays while G H < C (G < 64 global tokens for longformer-base); above that the
        reference's order is cheaper and is used. Same numbers up to float32 summation order.
        """
        B, H, G, D = q_g.shape
        C = hidden.shape[-1]
        if G * H >= C:
            return super().global_attention(q_g, hidden, kv_global, kind, slot_used)
        weight, bias = kv_global  # (2C, C), (2C,): key_global then value_global
        w_k, w_v = weight[:C].reshape(H, D, C), weight[C:].reshape(H, D, C)  # (H, D, C) each
        b_k, b_v = bias[:C].reshape(H, 1, D), bias[C:].reshape(H, 1, D)  # (H, 1, D) each
        N = hidden.shape[1]
        # the heads and global queries stacked as the rows of one product, so that it reads the N x C input once
        # (as H*G matrix-vector products it read it H*G times: 8 ms a layer at 4096 tokens, now ~2)
        folded_k = (q_g @ w_k).reshape(B, H * G, C)  # (B, H, G, C) -> (B, H*G, C)
        scores_g = (folded_k @ hidden.swapaxes(-1, -2)).reshape(B, H, G, N)  # (B, H*G, N) -> (B, H, G, N)
        scores_g += (q_g * b_k).sum(axis=-1, keepdims=True)  # (B, H, G, 1)
        probs_g = global_softmax(scores_g, kind, slot_used, np)  # (B, H, G, N)
        mixed = (probs_g.reshape(B, H * G, N) @ hidden).reshape(B, H, G, C)  # (B, H*G, C) -> (B, H, G, C)
        context_g = mixed @ w_v.swapaxes(-1, -2)  # (B, H, G, C) @ (H, C, D) -> (B, H, G, D)
        context_g += probs_g.sum(axis=-1, keepdims=True) * b_v  # (B, H, G, D)
        return context_g, probs_g

    def project(self, x, weight_bias, count, H, scales=None):
        """One product per projection (q, then k, then v), each followed by its bias, its scale and the split into
        heads in one parallel pass (NumPy's copy of the (B, H, N, D) views of the product took 17 ms a layer at
        4096 tokens, this ~4.5; the scale there spares the model's q *= scale, one more pass over q). One product
        per projection rather than the reference's stacked one, and a block of rows at a time that keeps the
        product under FFN_BLOCK_BYTES (all N at 4096 tokens, 2 blocks at 16384): see feed_forward_rows for why the
        size matters. The products share that one array."""
        x, weight, bias = _float32(x, "x"), _float32(weight_bias[0], "weight"), weight_bias[1]
        B, N, C = x.shape
        rows = _block_rows(N, B * C * 4)
        y = np.empty((B, rows, C), np.float32)  # (B, rows, C): each projection's product in turn, by blocks
        heads = []
        for c, scale in enumerate(projection_scales(scales, count)):
            w, b = weight[c * C:(c + 1) * C].T, _float32(bias[c * C:(c + 1) * C], "bias")  # (C, C), (C,)
            head = self._reused.empty(("project", count, c), (B, H, N, C // H))  # (B, H, N, D)
            for start in range(0, N, rows):
                block = y[:, :min(rows, N - start)]  # (B, rows or fewer, C)
                np.matmul(x[:, start:start + rows], w, out=block)
                self._parallel(_split_heads, block, b, np.float32(scale), head, start)
            heads.append(head)
        return heads

    def feed_forward_rows(self, n_tokens, width):
        """Rows that keep the FFN's (rows, F) float32 block under FFN_BLOCK_BYTES, in blocks of equal size.

        glibc's malloc serves a block above its mmap threshold (which it raises by itself up to 32 MiB, as freed
        blocks show the sizes in use) as fresh pages from the kernel, faulted in and zeroed on first touch, and
        unmaps it when it is freed. The (N, F) block of every layer (50 MB at 4096 tokens) and the stacked
        (N, 3C) projection were such blocks: 1.2 GB of fresh pages a forward, 0.15-0.25 s of system time.
        Below the ceiling the freed blocks stay in malloc's heap and the next layer reuses them. Measured at 4096
        tokens on the 2-core Xeon (whole model, median of 5, three runs): 3.56-3.63 s before, 3.34-3.53 s with
        blocks of 2048 rows and one product per projection, 3.44-3.61 s with blocks of 1024 (smaller products).
        """
        rows = _block_rows(n_tokens, width * 4)
        return rows if rows < n_tokens else None

    def bias_gelu(self, x, bias=None, out=None):
        """gelu(x + bias) in one pass over x (..., F), written into out (x itself allowed) or a new array."""
        x = _float32(x, "x")
        F = x.shape[-1] if x.ndim else 1
        bias = np.zeros(F, np.float32) if bias is None else _float32(bias, "bias")
        if out is None:
            out = x.copy()
        elif out is not x:
            if not (isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == x.shape
                    and out.flags.c_contiguous and out.flags.writeable):
                raise ValueError(f"out must be a writeable C-contiguous float32 array of shape {x.shape}")
            out[...] = x
        self._parallel(_gelu_kernel, out.reshape(-1, F), bias)
        return out

    def gelu(self, x, out=None):
        return self.bias_gelu(x, out=out)

    def residual_layer_norm(self, x, residual, weight, bias, eps, x_bias=None):
        """LayerNorm(x + x_bias + residual) over the last axis, in one pass over x and residual (..., C)."""
        x, residual = _float32(x, "x"), _float32(residual, "residual")
        if residual.shape != x.shape:
            raise ValueError(f"residual must have the shape of x {x.shape}, got {residual.shape}")
        x_bias = np.zeros(x.shape[-1:], np.float32) if x_bias is None else _float32(x_bias, "x_bias")  # + 0: exact
        return self._layer_norm(x, x_bias, residual, weight, bias, eps)

    def layer_norm(self, x, weight, bias, eps):
        x = _float32(x, "x")
        return self._layer_norm(x, np.zeros(x.shape[-1:], np.float32), x, weight, bias, eps, add_residual=False)

    def _layer_norm(self, x, x_bias, residual, weight, bias, eps, add_residual=True):
        """The kernel reads C numbers of every vector (it checks no bounds): their shapes are checked here."""
        if x.ndim == 0:
            raise ValueError("x must have at least one axis (the C features that are normalized)")
        C = x.shape[-1]
        weight, bias = _float32(weight, "weight"), _float32(bias, "bias")
        for name, vector in (("weight", weight), ("bias", bias), ("x_bias", x_bias)):
            if vector.shape != (C,):
                raise ValueError(f"{name} must have shape ({C},) (x's last axis), got {vector.shape}")
        out = np.empty_like(x)
        if out.size == 0:
            return out
        self._parallel(_layer_norm_kernel, x.reshape(-1, C), x_bias, residual.reshape(-1, C), add_residual,
                       weight, bias, np.float32(eps), out.reshape(-1, C))
        return out
