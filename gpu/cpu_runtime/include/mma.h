// nvcuda::wmma for the CPU runtime (gpu/cpu_runtime/cuda_cpu.h): stands in for the CUDA toolkit's <mma.h>, which a
// kernel includes unchanged; the runtime's include directory comes first on g++'s include path.
//
// Only the 16x16x16 shapes, with __half / __nv_bfloat16 inputs and float accumulators, as the kernels use them.
// Every lane holds the whole 16x16 tile (a real fragment holds the lane's share in an unspecified order, which no
// correct kernel depends on). load_matrix_sync, store_matrix_sync and mma_sync are warp-wide operations: all 32
// lanes must call them at the same place with the same pointer and stride, as on a GPU; the work is done once when
// the warp has arrived. The pointer must be 256-bit (32-byte) aligned and ldm a multiple of 16 bytes, or the
// launch fails naming the call. Products are exact (16-bit inputs) and summed in float, k in order.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    static_assert(M == 16 && N == 16 && K == 16, "the CPU runtime emulates 16x16x16 WMMA shapes only");
    static constexpr int rows = std::is_same<Use, matrix_b>::value ? K : M;
    static constexpr int cols = std::is_same<Use, matrix_a>::value ? K : N;
    static constexpr int num_elements = rows * cols;
    T x[rows * cols];  // row-major
};

inline float to_float(float x) { return x; }
inline float to_float(__half x) { return __half2float(x); }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

struct Op : cuda_cpu::WarpOp {
    const char* what = "";
    std::string file_line;
    void* ptr = nullptr;       // load / store: the memory; mma: d
    unsigned ldm = 0;
    bool col = false;          // column-major memory
    void* frag = nullptr;      // load: destination; store: source
    size_t frag_bytes = 0;
    const void *a = nullptr, *b = nullptr, *c = nullptr;
    void (*work)(Op* lead) = nullptr;  // done once for the warp, on the lead lane's operands
};

inline void complete(cuda_cpu::WarpOp* const* lanes) {
    Op* lead = nullptr;
    for (unsigned l = 0; l < cuda_cpu::WARP && !lead; ++l) lead = static_cast<Op*>(lanes[l]);
    for (unsigned l = 0; l < cuda_cpu::WARP; ++l) {
        const Op* o = static_cast<const Op*>(lanes[l]);
        if (o && (o->ptr != lead->ptr || o->ldm != lead->ldm || o->col != lead->col) && lead->work != nullptr &&
            cuda_cpu::tls_worker->error.empty())
            cuda_cpu::tls_worker->error = cuda_cpu::block_name(cuda_cpu::tls_worker) + ": " + lead->what + " at " +
                                          lead->file_line + ": lane " + std::to_string(l) +
                                          " passes another pointer or stride than lane 0";
    }
    lead->work(lead);
    for (unsigned l = 0; l < cuda_cpu::WARP; ++l) {  // every lane gets the warp's result
        Op* o = static_cast<Op*>(lanes[l]);
        if (o && o != lead && lead->frag) memcpy(o->frag, lead->frag, lead->frag_bytes);
    }
}

template <class T>
inline void check_memory(const char* what, const char* file, int line, const void* p, unsigned ldm) {
    if (reinterpret_cast<uintptr_t>(p) % 32 != 0)
        cuda_cpu::fail(cuda_cpu::site(what, file, line) + ": the pointer is not 32-byte (256-bit) aligned");
    if (ldm * sizeof(T) % 16 != 0)
        cuda_cpu::fail(cuda_cpu::site(what, file, line) + ": ldm = " + std::to_string(ldm) +
                       " elements is not a multiple of 16 bytes");
}

inline void wait(Op& op, const char* what, const char* file, int line) {
    op.mask = 0xffffffffu;
    op.complete = complete;
    op.what = what;
    op.file_line = std::string(file) + ":" + std::to_string(line);
    cuda_cpu::warp_wait(&op, what, file, line);
    if (!cuda_cpu::tls_worker->error.empty()) cuda_cpu::fail("after " + cuda_cpu::site(what, file, line));
}

template <class Frag, class T>
inline void load_work(Op* lead) {
    Frag& f = *static_cast<Frag*>(lead->frag);
    const T* p = static_cast<const T*>(lead->ptr);
    for (int r = 0; r < Frag::rows; ++r)
        for (int c = 0; c < Frag::cols; ++c)
            f.x[r * Frag::cols + c] = lead->col ? p[(size_t)c * lead->ldm + r] : p[(size_t)r * lead->ldm + c];
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void load_matrix_sync_at(const char* file, int line, fragment<Use, M, N, K, T, Layout>& f, const T* p,
                                unsigned ldm) {
    using Frag = fragment<Use, M, N, K, T, Layout>;
    check_memory<T>("wmma::load_matrix_sync", file, line, p, ldm);
    Op op;
    op.ptr = const_cast<T*>(p), op.ldm = ldm, op.col = std::is_same<Layout, col_major>::value;
    op.frag = &f, op.frag_bytes = sizeof f, op.work = load_work<Frag, T>;
    wait(op, "wmma::load_matrix_sync", file, line);
}

template <int M, int N, int K>
inline void load_matrix_sync_at(const char* file, int line, fragment<accumulator, M, N, K, float>& f, const float* p,
                                unsigned ldm, layout_t layout) {
    using Frag = fragment<accumulator, M, N, K, float>;
    check_memory<float>("wmma::load_matrix_sync", file, line, p, ldm);
    Op op;
    op.ptr = const_cast<float*>(p), op.ldm = ldm, op.col = layout == mem_col_major;
    op.frag = &f, op.frag_bytes = sizeof f, op.work = load_work<Frag, float>;
    wait(op, "wmma::load_matrix_sync", file, line);
}

template <int M, int N, int K>
inline void store_matrix_sync_at(const char* file, int line, float* p, const fragment<accumulator, M, N, K, float>& f,
                                 unsigned ldm, layout_t layout) {
    using Frag = fragment<accumulator, M, N, K, float>;
    check_memory<float>("wmma::store_matrix_sync", file, line, p, ldm);
    Op op;
    op.ptr = p, op.ldm = ldm, op.col = layout == mem_col_major;
    op.a = &f;
    op.work = [](Op* lead) {
        const Frag& f = *static_cast<const Frag*>(lead->a);
        float* p = static_cast<float*>(lead->ptr);
        for (int r = 0; r < Frag::rows; ++r)
            for (int c = 0; c < Frag::cols; ++c)
                (lead->col ? p[(size_t)c * lead->ldm + r] : p[(size_t)r * lead->ldm + c]) = f.x[r * Frag::cols + c];
    };
    wait(op, "wmma::store_matrix_sync", file, line);
}

template <class Use, int M, int N, int K, class T, class Layout>
inline void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& v) {
    for (int i = 0; i < f.num_elements; ++i) f.x[i] = v;
}

template <int M, int N, int K, class T, class LA, class LB>
inline void mma_sync_at(const char* file, int line, fragment<accumulator, M, N, K, float>& d,
                        const fragment<matrix_a, M, N, K, T, LA>& a, const fragment<matrix_b, M, N, K, T, LB>& b,
                        const fragment<accumulator, M, N, K, float>& c) {
    using D = fragment<accumulator, M, N, K, float>;
    using A = fragment<matrix_a, M, N, K, T, LA>;
    using B = fragment<matrix_b, M, N, K, T, LB>;
    Op op;
    op.a = &a, op.b = &b, op.c = &c;
    op.frag = &d, op.frag_bytes = sizeof d;
    op.work = [](Op* lead) {
        const A& a = *static_cast<const A*>(lead->a);
        const B& b = *static_cast<const B*>(lead->b);
        const D& c = *static_cast<const D*>(lead->c);
        D out;
        for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
                float acc = c.x[i * N + j];
                for (int k = 0; k < K; ++k) acc = fmaf(to_float(a.x[i * K + k]), to_float(b.x[k * N + j]), acc);
                out.x[i * N + j] = acc;
            }
        memcpy(lead->frag, &out, sizeof out);
    };
    wait(op, "wmma::mma_sync", file, line);
}

}  // namespace wmma
}  // namespace nvcuda

#define load_matrix_sync(...) load_matrix_sync_at(__FILE__, __LINE__, __VA_ARGS__)
#define store_matrix_sync(...) store_matrix_sync_at(__FILE__, __LINE__, __VA_ARGS__)
#define mma_sync(...) mma_sync_at(__FILE__, __LINE__, __VA_ARGS__)
