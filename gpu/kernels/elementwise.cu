// The feed-forward block's elementwise pieces, float32: bias + exact GELU, and residual + LayerNorm.
// Computes: bias_gelu_f32      out = gelu(x + bias) with gelu(h) = h/2 (1 + erf(h / sqrt 2)) (BERT's exact GELU;
//                              refimpl.ops.gelu), bias optional (has_bias 0: out = gelu(x)). out may be x (each
//                              element is read, then written, by one thread).
//           residual_layer_norm_f32  out = LayerNorm(x + residual) over the last axis, biased variance, as torch;
//                              residual optional (has_residual 0). out may be x (the row is read before it is written).
// Shapes: x, residual, out (rows, C) float32 C-contiguous; bias, weight (C,) float32.
// Launch: bias_gelu_f32 grid min(ceil(n/256), 2^20) x block 256, grid-stride over n = rows * C elements;
//         residual_layer_norm_f32 grid (rows), block 256 (one block per row), dynamic shared memory C floats
//         (the row, so it is read from global memory once); reductions by warp shuffles, then across the 8 warps.
// Versions: v1 (this file): two-pass mean/variance from the row in shared memory, float32 throughout. Not yet timed.

#include "common.cuh"  // LN_THREADS, GELU_THREADS

extern "C" __global__ void bias_gelu_f32(const float* x, const float* __restrict__ bias, float* out,
                                         long long n, int C, int has_bias)
{
    const float inv_sqrt2 = 0.70710678118654752440f;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n; e += stride) {
        const float h = x[e] + (has_bias ? bias[e % C] : 0.0f);
        out[e] = 0.5f * h * (1.0f + erff(h * inv_sqrt2));
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    #pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
    return v;
}

// The sum of v over the block, returned to every thread. partial holds one value per warp; the trailing barrier
// lets the next call reuse it. Every thread adds the warps' partial sums in the same order: same result everywhere.
__device__ __forceinline__ float block_sum(float v, float* partial) {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = warp_sum(v);
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < LN_THREADS / 32; ++w) total += partial[w];
    __syncthreads();
    return total;
}

extern "C" __global__ void __launch_bounds__(LN_THREADS) residual_layer_norm_f32(
    const float* x, const float* __restrict__ residual, const float* __restrict__ weight,
    const float* __restrict__ bias, float* out, int C, float eps, int has_residual)
{
    extern __shared__ float row[];                  // [C]: x + residual of this block's row
    __shared__ float partial[LN_THREADS / 32];
    const size_t base = (size_t)blockIdx.x * C;

    float sum = 0.0f;
    for (int c = threadIdx.x; c < C; c += LN_THREADS) {
        const float h = x[base + c] + (has_residual ? residual[base + c] : 0.0f);
        row[c] = h;
        sum += h;
    }
    const float mean = block_sum(sum, partial) / C;

    float sq = 0.0f;
    for (int c = threadIdx.x; c < C; c += LN_THREADS) {
        const float d = row[c] - mean;
        sq += d * d;
    }
    const float var = block_sum(sq, partial) / C;  // biased, as torch.nn.LayerNorm
    const float rstd = 1.0f / sqrtf(var + eps);

    for (int c = threadIdx.x; c < C; c += LN_THREADS)
        out[base + c] = (row[c] - mean) * rstd * weight[c] + bias[c];
}
