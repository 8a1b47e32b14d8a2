// Longformer's local attention (band + global columns), fused FlashAttention-style, float32.
// Computes: passes 1-3 of refimpl/attention.py in one kernel, with the same pass names. For every local query i of
//   row b, head h: one softmax over the G global keys (slot order) and the band keys j = i + d (t - W), t = 0..2W
//   (t <= W when causal: the autoregressive window), that exist and are local, d = dilation[h];
//   context[b,h,i] = sum_j p_ij v_j. The softmax is online (running max and sum), so the (N, G+S) scores never reach
//   global memory; when asked, a second sweep recomputes the scores and writes the probabilities.
// Shapes: q, k, v, context (B,H,N,D) float32 (q pre-scaled by 1/sqrt(D)); kind (B,N), global_index (B,G),
//   n_global (B,), dilation (H,) int32; probs (B,H,N,G+S) float32 with S = 2W+1 (W+1 when causal), zero-filled by
//   the launcher (only visible columns are written).
// Launch: grid (ceil(N/64), B*H), block 128; dynamic shared memory SwaSmem<DMAX>::bytes (26 KB at DMAX 32,
//   42 KB at 64, 74 KB at 128: above 48 KB the launcher raises the function's limit). DMAX is the head size rounded
//   up to 32, 64 or 128; D <= DMAX is a runtime argument and the tiles are zero-padded to DMAX.
// Tiles: a block holds 64 queries of one (b,h) and walks key tiles of 32: the global keys first, then the band
//   [q0-dW, q0+63+dW] (causal: [q0-dW, q0+63]) clipped to [0,N). Each thread owns a 4x4 micro-tile of scores and
//   4 rows x DMAX/8 columns of the context accumulator.
// Instances: per DMAX, the plain window (dilation 1, both sides: `_d64`) and the general one (any dilation per head,
//   causal or not: `_d64_general`, launch-bounded with minBlocks 1 so that ptxas need not spill for the window
//   test). A dilated head walks every key of its span, d times the keys it attends: a v2 would gather one residue
//   class of keys per tile.
// Versions: v1 (this file) scalar FMAs from shared memory. Compiled for sm_80/sm_90 without register spills; run on
//   the CPU by tests/gpu/test_cpu_runtime.py; not yet timed on a GPU. The tensor-core variant is
//   sliding_window_attention_tc.cu.

#include "common.cuh"  // BQ, BK_F32, ATTENTION_THREADS, token kinds, MASKED, tile loading

#define BK BK_F32                   // keys per tile
#define NTHREADS ATTENTION_THREADS  // 16 x 8 threads: ty = tid / 8 owns score rows ty*4..ty*4+3, tx = tid % 8
                                    // owns columns tx + 8c

// Shared-memory layout, in floats (the int arrays at the end are 4 bytes each too). The +1 on the row strides of
// Qs, Ks and Ss puts the rows a warp reads at once into different banks. The launcher repeats this arithmetic.
template <int DMAX>
struct SwaSmem {
    static constexpr int q_stride = DMAX + 1;
    static constexpr int k_stride = DMAX + 1;
    static constexpr int v_stride = DMAX;
    static constexpr int s_stride = BK + 1;
    static constexpr int q_off = 0;                              // Qs[BQ][q_stride]   the block's queries
    static constexpr int k_off = q_off + BQ * q_stride;          // Ks[BK][k_stride]   one tile of keys
    static constexpr int v_off = k_off + BK * k_stride;          // Vs[BK][v_stride]   and its values
    static constexpr int s_off = v_off + BK * v_stride;          // Ss[BQ][s_stride]   scores, then probabilities
    static constexpr int row_off = s_off + BQ * s_stride;        // row_alpha, row_max, row_sum: [BQ] each
    static constexpr int int_off = row_off + 3 * BQ;             // row_local[BQ], key_pos[BK], key_ok[BK]
    static constexpr int bytes = 4 * (int_off + BQ + 2 * BK);
};

template <int DMAX, bool GENERAL>
__device__ __forceinline__ void swa_f32(
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,
    const int* __restrict__ kind, const int* __restrict__ global_index, const int* __restrict__ n_global,
    const int* __restrict__ dilation, float* __restrict__ context, float* __restrict__ probs,
    int H, int N, int D, int G, int W, int causal, int write_probs)
{
    using L = SwaSmem<DMAX>;
    extern __shared__ float smem[];
    float* Qs = smem + L::q_off;
    float* Ks = smem + L::k_off;
    float* Vs = smem + L::v_off;
    float* Ss = smem + L::s_off;
    float* row_alpha = smem + L::row_off;
    float* row_max = row_alpha + BQ;
    float* row_sum = row_max + BQ;
    int* row_local = reinterpret_cast<int*>(smem + L::int_off);
    int* key_pos = row_local + BQ;
    int* key_ok = key_pos + BK;

    const int tid = threadIdx.x;
    if (tid == 0 && dynamic_smem_bytes() < L::bytes) __trap();  // launched with less shared memory than the layout

    const int q0 = blockIdx.x * BQ;                 // first query of this block
    const int bh = blockIdx.y;                      // (b, h) flattened
    const int b = bh / H;
    const size_t head = (size_t)bh * N * D;         // offset of (b, h) in q, k, v, context
    const int* kind_b = kind + (size_t)b * N;
    const int* gidx_b = global_index + (size_t)b * G;
    const int n_g = min(n_global[b], G);
    // this head's window; the plain one (d = 1, both sides) is its own instance, for its registers
    const Band band = GENERAL ? Band(dilation[bh % H], W, causal) : Band(1, W, 0);
    const int P = G + band.slots();                 // columns of one probs row

    // the queries of this block, zero-padded to BQ rows and DMAX columns
    load_queries<float, DMAX, NTHREADS>(Qs, L::q_stride, q + head, q0, N, D, tid);
    int my_local = 0;
    if (tid < BQ) {
        const int i = q0 + tid;
        my_local = (i < N && kind_b[i] == LOCAL);
        row_local[tid] = my_local;
    }
    if (!__syncthreads_or(my_local)) {  // no local query here (padding, global tokens): the rows are 0
        for (int e = tid; e < BQ * D; e += NTHREADS) {
            const int i = q0 + e / D;
            if (i < N) context[head + (size_t)i * D + e % D] = 0.0f;
        }
        return;
    }

    // The keys this block can see: the n_g global keys, then the band of its first and last query.
    const int band_lo = band.lo(q0);
    const int band_hi = band.hi(q0, N);  // exclusive
    const int n_glob_tiles = (n_g + BK - 1) / BK;
    const int n_tiles = n_glob_tiles + (band_hi - band_lo + BK - 1) / BK;

    // Tile t holds global slots t*BK.. (t < n_glob_tiles) or band keys band_lo + (t - n_glob_tiles)*BK..: which
    // keys (key_pos: a position in the sequence; key_ok: the key may be attended at all) and, with them, K (and V)
    // rows in shared memory; keys that are not ok load as zeros.
    auto load_tile = [&](bool is_global_tile, int tile_start, bool with_values) {
        __syncthreads();  // the previous tile is consumed
        tile_keys<BK>(is_global_tile, tile_start, tid, kind_b, gidx_b, n_g, N, band_hi, key_pos, key_ok);
        __syncthreads();
        load_key_rows<float, BK, DMAX, NTHREADS>(Ks, L::k_stride, Vs, L::v_stride, with_values, k, v, head,
                                                 key_pos, key_ok, D, tid);
        __syncthreads();
    };

    const int ty = tid / 8, tx = tid % 8;

    // pass 1: this thread's 4x4 scores q_i . k_j, masked (MASKED) where query i may not see key j, into Ss
    auto scores_to_smem = [&](bool is_global_tile) {
        float s[4][4] = {};
        #pragma unroll 4
        for (int d = 0; d < DMAX; ++d) {
            float qv[4], kv[4];
            #pragma unroll
            for (int a = 0; a < 4; ++a) qv[a] = Qs[(ty * 4 + a) * L::q_stride + d];
            #pragma unroll
            for (int c = 0; c < 4; ++c) kv[c] = Ks[(tx + 8 * c) * L::k_stride + d];
            #pragma unroll
            for (int a = 0; a < 4; ++a)
                #pragma unroll
                for (int c = 0; c < 4; ++c) s[a][c] = fmaf(qv[a], kv[c], s[a][c]);
        }
        #pragma unroll
        for (int a = 0; a < 4; ++a) {
            const int row = ty * 4 + a, i = q0 + row;
            #pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int col = tx + 8 * c;
                const bool visible = key_ok[col] && (is_global_tile || band.sees(i, key_pos[col]));
                Ss[row * L::s_stride + col] = visible ? s[a][c] : MASKED;
            }
        }
    };

    // The softmax of row sm_row is kept by two threads, each with half of a tile's columns.
    const int sm_row = tid / 2, sm_half = tid % 2;
    float m_run = MASKED;  // running max of the row's visible scores
    float l_run = 0.0f;       // running sum of exp(score - m_run)

    float acc[4][DMAX / 8];   // context rows ty*4+a, columns tx + 8c, not yet divided by the sum
    #pragma unroll
    for (int a = 0; a < 4; ++a)
        #pragma unroll
        for (int c = 0; c < DMAX / 8; ++c) acc[a][c] = 0.0f;

    for (int t = 0; t < n_tiles; ++t) {
        const bool is_global_tile = t < n_glob_tiles;
        const int tile_start = is_global_tile ? t * BK : band_lo + (t - n_glob_tiles) * BK;
        load_tile(is_global_tile, tile_start, true);

        scores_to_smem(is_global_tile);  // pass 1
        __syncthreads();

        // pass 2: online softmax. New max over this tile, rescale what came before by alpha = exp(m_old - m_new),
        // replace the scores by p = exp(s - m_new). A masked score (MASKED) gives p = 0; a row with nothing visible
        // yet keeps m = MASKED and alpha = 1 (its sum and accumulator are still 0).
        {
            float* srow = Ss + sm_row * L::s_stride + sm_half * (BK / 2);
            float tile_max = MASKED;
            #pragma unroll
            for (int j = 0; j < BK / 2; ++j) tile_max = fmaxf(tile_max, srow[j]);
            tile_max = fmaxf(tile_max, __shfl_xor_sync(0xffffffffu, tile_max, 1));
            const float m_new = fmaxf(m_run, tile_max);
            const float alpha = (m_new == MASKED) ? 1.0f : expf(m_run - m_new);
            float sum = 0.0f;
            #pragma unroll
            for (int j = 0; j < BK / 2; ++j) {
                const float p = (srow[j] == MASKED) ? 0.0f : expf(srow[j] - m_new);
                srow[j] = p;
                sum += p;
            }
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            l_run = l_run * alpha + sum;
            m_run = m_new;
            if (sm_half == 0) row_alpha[sm_row] = alpha;
        }
        __syncthreads();

        // pass 3: acc = acc * alpha + P V over this tile's keys
        #pragma unroll
        for (int a = 0; a < 4; ++a) {
            const float alpha = row_alpha[ty * 4 + a];
            #pragma unroll
            for (int c = 0; c < DMAX / 8; ++c) acc[a][c] *= alpha;
        }
        #pragma unroll 4
        for (int j = 0; j < BK; ++j) {
            float p[4];
            #pragma unroll
            for (int a = 0; a < 4; ++a) p[a] = Ss[(ty * 4 + a) * L::s_stride + j];
            #pragma unroll
            for (int c = 0; c < DMAX / 8; ++c) {
                const float vv = Vs[j * L::v_stride + tx + 8 * c];
                #pragma unroll
                for (int a = 0; a < 4; ++a) acc[a][c] = fmaf(p[a], vv, acc[a][c]);
            }
        }
    }

    if (sm_half == 0) {
        row_max[sm_row] = m_run;
        row_sum[sm_row] = l_run;
    }
    __syncthreads();

    // context = acc / sum for local queries; padding and global queries get 0 (the model overwrites global rows).
    // A local query always sees itself, so its sum is >= 1.
    #pragma unroll
    for (int a = 0; a < 4; ++a) {
        const int row = ty * 4 + a, i = q0 + row;
        if (i >= N) continue;
        const float inv = row_local[row] ? 1.0f / row_sum[row] : 0.0f;
        #pragma unroll
        for (int c = 0; c < DMAX / 8; ++c) {
            const int d = tx + 8 * c;
            if (d < D) context[head + (size_t)i * D + d] = acc[a][c] * inv;
        }
    }

    if (!write_probs) return;

    // Second sweep, only for output_attentions: the same tiles, the same pass 1, then p = exp(s - max) / sum with the
    // final max and sum, written to global slot s -> column s and band key j -> column G + (j - i + W).
    for (int t = 0; t < n_tiles; ++t) {
        const bool is_global_tile = t < n_glob_tiles;
        const int tile_start = is_global_tile ? t * BK : band_lo + (t - n_glob_tiles) * BK;
        load_tile(is_global_tile, tile_start, false);
        scores_to_smem(is_global_tile);
        __syncthreads();
        for (int e = tid; e < BQ * BK; e += NTHREADS) {  // a warp writes one row's 32 columns: coalesced
            const int row = e / BK, col = e % BK, i = q0 + row;
            const float s = Ss[row * L::s_stride + col];
            if (i >= N || !row_local[row] || s == MASKED) continue;
            const int column = is_global_tile ? tile_start + col : G + band.slot(i, key_pos[col]);
            probs[((size_t)bh * N + i) * P + column] = expf(s - row_max[row]) / row_sum[row];
        }
    }
}

// Entry points, per DMAX the plain and the general window. Arguments: q, k, v, kind, global_index, n_global,
// dilation, context, probs (a 1-element dummy unless write_probs), then H, N, D, G, W, causal, write_probs as int32.
#define SWA_F32_ARGS                                                                                           \
    const float* __restrict__ q, const float* __restrict__ k, const float* __restrict__ v,                     \
    const int* __restrict__ kind, const int* __restrict__ global_index, const int* __restrict__ n_global,     \
    const int* __restrict__ dilation, float* __restrict__ context, float* __restrict__ probs, int H, int N,   \
    int D, int G, int W, int causal, int write_probs
#define SWA_F32_CALL q, k, v, kind, global_index, n_global, dilation, context, probs, H, N, D, G, W, causal, \
    write_probs

extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f32_d32(SWA_F32_ARGS) {
    swa_f32<32, false>(SWA_F32_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f32_d64(SWA_F32_ARGS) {
    swa_f32<64, false>(SWA_F32_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS) sliding_window_attention_f32_d128(SWA_F32_ARGS) {
    swa_f32<128, false>(SWA_F32_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS, 1) sliding_window_attention_f32_d32_general(SWA_F32_ARGS) {
    swa_f32<32, true>(SWA_F32_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS, 1) sliding_window_attention_f32_d64_general(SWA_F32_ARGS) {
    swa_f32<64, true>(SWA_F32_CALL);
}
extern "C" __global__ void __launch_bounds__(NTHREADS, 1) sliding_window_attention_f32_d128_general(SWA_F32_ARGS) {
    swa_f32<128, true>(SWA_F32_CALL);
}
