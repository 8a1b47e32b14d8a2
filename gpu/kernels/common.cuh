// What the kernels of gpu/kernels share: launch constants, token kinds, the masked score, tile loading and the
// launch's dynamic shared-memory size.
// Read by Python: gpu/kernel_constants.py parses every `#define NAME <integer>` line of this file, and gpu/backend.py
//   takes its block sizes, tile sizes and limits from there, so the launchers cannot drift from the kernels.
// Included by: sliding_window_attention.cu, sliding_window_attention_tc.cu, elementwise.cu, through the loader's
//   include path (NVRTC: -I gpu/kernels; nvcc finds it beside the .cu file).
#pragma once

// Launch geometry (integer #defines: Python reads these)
#define BQ 64                       // queries per block, both attention kernels
#define BK_F32 32                   // keys per tile, sliding_window_attention.cu
#define BK_TC 64                    // keys per tile, sliding_window_attention_tc.cu
#define ATTENTION_THREADS 128       // threads per attention block: 4 warps
#define MAX_HEAD_SIZE 128           // the largest DMAX instance; D <= 128
#define LN_THREADS 256              // residual_layer_norm_f32: threads per block, one block per row
#define GELU_THREADS 256            // bias_gelu_f32: threads per block
#define GELU_MAX_BLOCKS 1048576     // bias_gelu_f32: at most 2^20 blocks, grid-stride beyond
#define DEFAULT_SMEM_LIMIT 49152    // dynamic shared memory above 48 KB needs the function's opt-in

// Token kinds, as refimpl.attention: transformers' merged attention mask
#define PADDING 0
#define LOCAL 1
#define GLOBAL 2

// The score of a masked column: finfo(float32).min, the reference's MASKED (refimpl/attention.py). A finite value,
// as in transformers; the kernels test `== MASKED` and give such a column probability exactly 0.
// (NVRTC has no <float.h>, hence the bit pattern of -FLT_MAX.)
#define MASKED __uint_as_float(0xff7fffffu)

// The element type a kernel computes its products in: float, or __half / __nv_bfloat16 (specialised in
// sliding_window_attention_tc.cu, where cuda_fp16.h and cuda_bf16.h are included).
template <typename T> __device__ __forceinline__ T to_t(float x);
template <> __device__ __forceinline__ float to_t<float>(float x) { return x; }

// The launch's dynamic shared-memory size in bytes (PTX's %dynamic_smem_size): each kernel traps when it was
// launched with less than its layout needs. The CPU runtime (gpu/cpu_runtime/cuda_cpu.h) answers for the host.
__device__ __forceinline__ unsigned dynamic_smem_bytes() {
#if defined(__CUDA_ARCH__)
    unsigned r;
    asm volatile("mov.u32 %0, %%dynamic_smem_size;" : "=r"(r));
    return r;
#elif defined(CUDA_CPU_RUNTIME)
    return cuda_cpu::dynamic_smem_size();
#else
    return 0;  // nvcc's host pass parses device code but never runs it
#endif
}

// The band of one head (refimpl/attention.py): slot t = 0..2W of query i is key i + d (t - W), d the head's dilation;
// autoregressive (causal): only the slots t <= W, keys at or before the query.
struct Band {
    int d, W;
    int reach_back, reach_ahead;  // the farthest key before / after a query: d W, and d W or 0 (causal)
    __device__ __forceinline__ Band(int d_, int W_, int causal)
        : d(d_), W(W_), reach_back(d_ * W_), reach_ahead(causal ? 0 : d_ * W_) {}
    // the keys that a block's queries q0 .. q0+BQ-1 can see, clipped to [0, N): [lo(q0), hi(q0, N))
    __device__ __forceinline__ int lo(int q0) const { return max(0, q0 - reach_back); }
    __device__ __forceinline__ int hi(int q0, int N) const { return min(N, q0 + BQ + reach_ahead); }
    // whether key j is in the window of query i
    __device__ __forceinline__ bool sees(int i, int j) const {
        const int off = j - i;  // in [-reach_back, reach_ahead] and a multiple of d
        return (unsigned)(off + reach_back) <= (unsigned)(reach_back + reach_ahead) && (d == 1 || off % d == 0);
    }
    // the probability column of band key j for query i, after the G global columns
    __device__ __forceinline__ int slot(int i, int j) const { return (j - i) / d + W; }
    // band slots per query: 2W+1, or W+1 when causal
    __device__ __forceinline__ int slots() const { return reach_ahead == 0 ? W + 1 : 2 * W + 1; }
};

// Tile loading, shared by both attention kernels. NT threads (tid = threadIdx.x) split each copy.

// The block's queries q0 .. q0+BQ-1 of one (b, h) into Qs[BQ][ld] as T, zero-padded beyond N and beyond D to DMAX.
template <typename T, int DMAX, int NT>
__device__ __forceinline__ void load_queries(T* Qs, int ld, const float* q_head, int q0, int N, int D, int tid) {
    for (int e = tid; e < BQ * DMAX; e += NT) {
        const int r = e / DMAX, d = e % DMAX, i = q0 + r;
        Qs[r * ld + d] = to_t<T>((i < N && d < D) ? q_head[(size_t)i * D + d] : 0.0f);
    }
}

// Which keys tile `tile_start` holds, written by threads tid < BKT: a global tile holds slots tile_start.. (key
// positions from gidx_b), a band tile the positions tile_start..; key_ok says the key may be attended at all
// (padding and global keys are not band keys: global keys have their own columns), key_pos is 0 where it is not.
template <int BKT>
__device__ __forceinline__ void tile_keys(bool is_global_tile, int tile_start, int tid, const int* kind_b,
                                          const int* gidx_b, int n_g, int N, int band_hi, int* key_pos, int* key_ok) {
    if (tid < BKT) {
        int pos, ok;
        if (is_global_tile) {
            const int s = tile_start + tid;  // slot
            pos = s < n_g ? gidx_b[s] : 0;
            ok = s < n_g && pos >= 0 && pos < N;
        } else {
            pos = tile_start + tid;
            ok = pos < band_hi && kind_b[pos] == LOCAL;
        }
        key_pos[tid] = ok ? pos : 0;
        key_ok[tid] = ok;
    }
}

// The tile's key rows of one (b, h) (offset `head` in k and v) into Ks[BKT][k_ld] and, with_values, the value rows
// into Vs[BKT][v_ld], as T; keys that are not ok and columns d >= D load as zeros.
template <typename T, int BKT, int DMAX, int NT>
__device__ __forceinline__ void load_key_rows(T* Ks, int k_ld, T* Vs, int v_ld, bool with_values, const float* k,
                                              const float* v, size_t head, const int* key_pos, const int* key_ok,
                                              int D, int tid) {
    for (int e = tid; e < BKT * DMAX; e += NT) {
        const int c = e / DMAX, d = e % DMAX;
        const bool in = key_ok[c] && d < D;
        const size_t src = head + (size_t)key_pos[c] * D + d;
        Ks[c * k_ld + d] = to_t<T>(in ? k[src] : 0.0f);
        if (with_values) Vs[c * v_ld + d] = to_t<T>(in ? v[src] : 0.0f);
    }
}
