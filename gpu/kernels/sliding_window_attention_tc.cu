// Longformer's local attention (band + global columns), fused, on tensor cores: half or bfloat16 inputs, float sums.
// Computes: the same as sliding_window_attention.cu (passes 1-3 of refimpl/attention.py, same names), with q, k, v
//   rounded to T = __half or __nv_bfloat16 as they are loaded; scores Q K^T and P V are 16x16x16 WMMA products with
//   float accumulators; the softmax (running max and sum), the masks and the output stay float32.
//   The window is the float32 kernel's: any dilation per head (dilation[h]), causal or not (S = 2W+1 or W+1 slots).
// Shapes: q, k, v, context (B,H,N,D) float32 (q pre-scaled by 1/sqrt(D)); kind (B,N), global_index (B,G),
//   n_global (B,), dilation (H,) int32; probs (B,H,N,G+S) float32, zero-filled by the launcher (only visible
//   columns are written).
// Launch: grid (ceil(N/64), B*H), block 128 (4 warps); dynamic shared memory TcSmem<T,DMAX>::bytes (51 KB at DMAX 32,
//   71 KB at 64, 111 KB at 128): the launcher raises the function's limit. DMAX is the head size rounded up to 32, 64
//   or 128; the tiles are zero-padded to DMAX, so any D <= 128 works.
// Tiles: a block holds 64 queries of one (b,h); warp w owns query rows 16w..16w+15. Key tiles of 64: the global keys
//   first, then the band [q0-dW, q0+63+dW] (causal: [q0-dW, q0+63]) clipped to [0,N). The context accumulator
//   lives in shared memory (float), because a WMMA accumulator's element-to-row mapping is unspecified and the
//   online softmax rescales rows.
// Versions: v1 (this file) WMMA (sm_80+: bf16 needs it). Compiled for sm_80/sm_90 without register spills; run on
//   the CPU by tests/gpu/test_cpu_runtime.py (WMMA emulated); not yet timed on a GPU. Not Hopper's wgmma: a v2
//   would use mma.sync fragments in registers and asynchronous copies.

#include <cuda_fp16.h>
#include <cuda_bf16.h>
#include <mma.h>

#include "common.cuh"  // BQ, BK_TC, ATTENTION_THREADS, token kinds, MASKED, to_t, tile loading

using namespace nvcuda;

#define BK BK_TC                    // keys per tile
#define NTHREADS ATTENTION_THREADS  // 4 warps: warp w owns query rows 16w..16w+15
#define WMMA_M 16                   // one WMMA product: 16x16 += 16x16 * 16x16

template <> __device__ __forceinline__ __half to_t<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ __nv_bfloat16 to_t<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }

// Shared-memory layout, in bytes. WMMA wants row strides (ldm) that are multiples of 16 bytes and fragment pointers
// aligned to 32 bytes: every region below is a multiple of 128 bytes, and 16-row steps of each stride are multiples
// of 32 bytes. The +8 / +4 element pads shift consecutive rows by 16 bytes across banks. The launcher repeats this.
template <typename T, int DMAX>
struct TcSmem {
    static constexpr int qkv_ld = DMAX + 8;  // Qh, Kh, Vh: T
    static constexpr int p_ld = BK + 8;      // Ph: T
    static constexpr int s_ld = BK + 4;      // Sf: float
    static constexpr int o_ld = DMAX + 4;    // Of: float
    static constexpr int q_off = 0;                                      // Qh[BQ][qkv_ld]   the block's queries
    static constexpr int k_off = q_off + BQ * qkv_ld * (int)sizeof(T);   // Kh[BK][qkv_ld]   one tile of keys
    static constexpr int v_off = k_off + BK * qkv_ld * (int)sizeof(T);   // Vh[BK][qkv_ld]   and its values
    static constexpr int p_off = v_off + BK * qkv_ld * (int)sizeof(T);   // Ph[BQ][p_ld]     probabilities, as T
    static constexpr int s_off = p_off + BQ * p_ld * (int)sizeof(T);     // Sf[BQ][s_ld]     scores
    static constexpr int o_off = s_off + BQ * s_ld * 4;                  // Of[BQ][o_ld]     context accumulator
    static constexpr int row_off = o_off + BQ * o_ld * 4;                // row_max[BQ], row_sum[BQ]: float
    static constexpr int int_off = row_off + 2 * BQ * 4;                 // row_local[BQ], key_pos[BK], key_ok[BK]
    static constexpr int bytes = int_off + 4 * (BQ + 2 * BK);
};

template <typename T, int DMAX>
__device__ __forceinline__ void swa_tc(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const int* __restrict__ kind, const int* __restrict__ global_index, const int* __restrict__ n_global,
    const int* __restrict__ dilation, float* __restrict__ context, float* __restrict__ probs,
    int H, int N, int D, int G, int W, int causal, int write_probs)
{
    using L = TcSmem<T, DMAX>;
    extern __shared__ __align__(128) unsigned char smem[];
    T* Qh = reinterpret_cast<T*>(smem + L::q_off);
    T* Kh = reinterpret_cast<T*>(smem + L::k_off);
    T* Vh = reinterpret_cast<T*>(smem + L::v_off);
    T* Ph = reinterpret_cast<T*>(smem + L::p_off);
    float* Sf = reinterpret_cast<float*>(smem + L::s_off);
    float* Of = reinterpret_cast<float*>(smem + L::o_off);
    float* row_max = reinterpret_cast<float*>(smem + L::row_off);
    float* row_sum = row_max + BQ;
    int* row_local = reinterpret_cast<int*>(smem + L::int_off);
    int* key_pos = row_local + BQ;
    int* key_ok = key_pos + BK;

    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32;
    if (tid == 0 && dynamic_smem_bytes() < L::bytes) __trap();  // launched with less shared memory than the layout

    const int q0 = blockIdx.x * BQ;
    const int bh = blockIdx.y;
    const int b = bh / H;
    const size_t head = (size_t)bh * N * D;
    const int* kind_b = kind + (size_t)b * N;
    const int* gidx_b = global_index + (size_t)b * G;
    const int n_g = min(n_global[b], G);
    const Band band{dilation[bh % H], W, causal};  // this head's window
    const int P = G + band.slots();

    load_queries<T, DMAX, NTHREADS>(Qh, L::qkv_ld, q + head, q0, N, D, tid);
    for (int e = tid; e < BQ * L::o_ld; e += NTHREADS) Of[e] = 0.0f;
    int my_local = 0;
    if (tid < BQ) {
        const int i = q0 + tid;
        my_local = (i < N && kind_b[i] == LOCAL);
        row_local[tid] = my_local;
    }
    if (!__syncthreads_or(my_local)) {  // no local query here: the rows are 0
        for (int e = tid; e < BQ * D; e += NTHREADS) {
            const int i = q0 + e / D;
            if (i < N) context[head + (size_t)i * D + e % D] = 0.0f;
        }
        return;
    }

    const int band_lo = band.lo(q0);
    const int band_hi = band.hi(q0, N);  // exclusive
    const int n_glob_tiles = (n_g + BK - 1) / BK;
    const int n_tiles = n_glob_tiles + (band_hi - band_lo + BK - 1) / BK;

    // As in the float32 kernel: key positions and visibility of tile t, then its K (and V) rows rounded to T.
    auto load_tile = [&](bool is_global_tile, int tile_start, bool with_values) {
        __syncthreads();  // the previous tile is consumed
        tile_keys<BK>(is_global_tile, tile_start, tid, kind_b, gidx_b, n_g, N, band_hi, key_pos, key_ok);
        __syncthreads();
        load_key_rows<T, BK, DMAX, NTHREADS>(Kh, L::qkv_ld, Vh, L::qkv_ld, with_values, k, v, head,
                                             key_pos, key_ok, D, tid);
        __syncthreads();
    };

    // pass 1: this warp's 16 x BK scores S = Q K^T on tensor cores, into Sf (unmasked). K stored row-major
    // [key][d] is K^T in column-major order with the same stride.
    auto scores_to_smem = [&]() {
        wmma::fragment<wmma::accumulator, WMMA_M, WMMA_M, WMMA_M, float> s_frag[BK / WMMA_M];
        #pragma unroll
        for (int n = 0; n < BK / WMMA_M; ++n) wmma::fill_fragment(s_frag[n], 0.0f);
        #pragma unroll
        for (int kk = 0; kk < DMAX / WMMA_M; ++kk) {
            wmma::fragment<wmma::matrix_a, WMMA_M, WMMA_M, WMMA_M, T, wmma::row_major> a;
            wmma::load_matrix_sync(a, Qh + warp * WMMA_M * L::qkv_ld + kk * WMMA_M, L::qkv_ld);
            #pragma unroll
            for (int n = 0; n < BK / WMMA_M; ++n) {
                wmma::fragment<wmma::matrix_b, WMMA_M, WMMA_M, WMMA_M, T, wmma::col_major> bt;
                wmma::load_matrix_sync(bt, Kh + n * WMMA_M * L::qkv_ld + kk * WMMA_M, L::qkv_ld);
                wmma::mma_sync(s_frag[n], a, bt, s_frag[n]);
            }
        }
        #pragma unroll
        for (int n = 0; n < BK / WMMA_M; ++n)
            wmma::store_matrix_sync(Sf + warp * WMMA_M * L::s_ld + n * WMMA_M, s_frag[n], L::s_ld, wmma::mem_row_major);
        __syncwarp();
    };

    auto visible = [&](bool is_global_tile, int i, int col) {
        return key_ok[col] && (is_global_tile || band.sees(i, key_pos[col]));
    };

    // The softmax of row sm_row is kept by two lanes of its warp; lane half h takes columns 2j + h.
    const int sm_row = warp * WMMA_M + lane / 2, sm_half = lane % 2, sm_i = q0 + sm_row;
    float m_run = MASKED, l_run = 0.0f;

    for (int t = 0; t < n_tiles; ++t) {
        const bool is_global_tile = t < n_glob_tiles;
        const int tile_start = is_global_tile ? t * BK : band_lo + (t - n_glob_tiles) * BK;
        load_tile(is_global_tile, tile_start, true);

        scores_to_smem();  // pass 1

        // pass 2: masked online softmax of the warp's rows; P (rounded to T) into Ph, and the accumulator rows
        // rescaled by alpha = exp(m_old - m_new). The sum adds the rounded p, the same numbers pass 3 multiplies.
        {
            const float* srow = Sf + sm_row * L::s_ld;
            float s[BK / 2];
            float tile_max = MASKED;
            #pragma unroll
            for (int j = 0; j < BK / 2; ++j) {
                const int col = 2 * j + sm_half;
                s[j] = visible(is_global_tile, sm_i, col) ? srow[col] : MASKED;
                tile_max = fmaxf(tile_max, s[j]);
            }
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            const float m_new = fmaxf(m_run, tile_max);
            const float alpha = (m_new == MASKED) ? 1.0f : expf(m_run - m_new);
            float sum = 0.0f;
            #pragma unroll
            for (int j = 0; j < BK / 2; ++j) {
                const T p = to_t<T>(s[j] == MASKED ? 0.0f : expf(s[j] - m_new));
                Ph[sm_row * L::p_ld + 2 * j + sm_half] = p;
                sum += to_f(p);
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            l_run = l_run * alpha + sum;
            m_run = m_new;
            float* orow = Of + sm_row * L::o_ld;
            #pragma unroll
            for (int j = 0; j < DMAX / 2; ++j) orow[2 * j + sm_half] *= alpha;
        }
        __syncwarp();

        // pass 3: O_w += P_w V on tensor cores, the accumulator loaded from and stored back to shared memory
        {
            wmma::fragment<wmma::matrix_a, WMMA_M, WMMA_M, WMMA_M, T, wmma::row_major> p_frag[BK / WMMA_M];
            #pragma unroll
            for (int kk = 0; kk < BK / WMMA_M; ++kk)
                wmma::load_matrix_sync(p_frag[kk], Ph + warp * WMMA_M * L::p_ld + kk * WMMA_M, L::p_ld);
            #pragma unroll
            for (int n = 0; n < DMAX / WMMA_M; ++n) {
                float* o_tile = Of + warp * WMMA_M * L::o_ld + n * WMMA_M;
                wmma::fragment<wmma::accumulator, WMMA_M, WMMA_M, WMMA_M, float> o_frag;
                wmma::load_matrix_sync(o_frag, o_tile, L::o_ld, wmma::mem_row_major);
                #pragma unroll
                for (int kk = 0; kk < BK / WMMA_M; ++kk) {
                    wmma::fragment<wmma::matrix_b, WMMA_M, WMMA_M, WMMA_M, T, wmma::row_major> v_frag;
                    wmma::load_matrix_sync(v_frag, Vh + kk * WMMA_M * L::qkv_ld + n * WMMA_M, L::qkv_ld);
                    wmma::mma_sync(o_frag, p_frag[kk], v_frag, o_frag);
                }
                wmma::store_matrix_sync(o_tile, o_frag, L::o_ld, wmma::mem_row_major);
            }
        }
    }

    if (sm_half == 0) {
        row_max[sm_row] = m_run;
        row_sum[sm_row] = l_run;
    }
    __syncthreads();

    // context = O / sum for local queries, 0 for the others; each warp writes its own 16 rows, coalesced
    for (int e = lane; e < WMMA_M * DMAX; e += 32) {
        const int row = warp * WMMA_M + e / DMAX, d = e % DMAX, i = q0 + row;
        if (i < N && d < D)
            context[head + (size_t)i * D + d] = row_local[row] ? Of[row * L::o_ld + d] / row_sum[row] : 0.0f;
    }

    if (!write_probs) return;

    // Second sweep, only for output_attentions: the same tiles and pass 1; p = exp(s - max) / sum with the final
    // max and sum (of rounded p), written to global slot s -> column s, band key j -> column G + (j - i + W).
    for (int t = 0; t < n_tiles; ++t) {
        const bool is_global_tile = t < n_glob_tiles;
        const int tile_start = is_global_tile ? t * BK : band_lo + (t - n_glob_tiles) * BK;
        load_tile(is_global_tile, tile_start, false);
        scores_to_smem();
        for (int e = lane; e < WMMA_M * BK; e += 32) {  // the warp writes 32 consecutive columns of a row at once
            const int row = warp * WMMA_M + e / BK, col = e % BK, i = q0 + row;
            if (i >= N || !row_local[row] || !visible(is_global_tile, i, col)) continue;
            const int column = is_global_tile ? tile_start + col : G + band.slot(i, key_pos[col]);
            probs[((size_t)bh * N + i) * P + column] = expf(Sf[row * L::s_ld + col] - row_max[row]) / row_sum[row];
        }
    }
}

// Entry points, one per element type and DMAX (each takes any window). Arguments as the float32 kernel's: q, k, v,
// kind, global_index, n_global, dilation, context, probs (a 1-element dummy unless write_probs), then H, N, D, G, W,
// causal, write_probs as int32.
#define SWA_TC_ARGS                                                                                            \
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                     \
    const int* __restrict__ kind, const int* __restrict__ global_index, const int* __restrict__ n_global,     \
    const int* __restrict__ dilation, float* __restrict__ context, float* __restrict__ probs, int H, int N,   \
    int D, int G, int W, int causal, int write_probs
#define SWA_TC_CALL q, k, v, kind, global_index, n_global, dilation, context, probs, H, N, D, G, W, causal, \
    write_probs

extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f16_d32(SWA_TC_ARGS) {
    swa_tc<__half, 32>(SWA_TC_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f16_d64(SWA_TC_ARGS) {
    swa_tc<__half, 64>(SWA_TC_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f16_d128(SWA_TC_ARGS) {
    swa_tc<__half, 128>(SWA_TC_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_bf16_d32(SWA_TC_ARGS) {
    swa_tc<__nv_bfloat16, 32>(SWA_TC_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_bf16_d64(SWA_TC_ARGS) {
    swa_tc<__nv_bfloat16, 64>(SWA_TC_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_bf16_d128(SWA_TC_ARGS) {
    swa_tc<__nv_bfloat16, 128>(SWA_TC_CALL);
}
