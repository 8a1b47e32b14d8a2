// A CPU execution runtime for this project's CUDA C: the unmodified .cu files of gpu/kernels, compiled by g++ with
// this header in front (-include cuda_cpu.h), run on the host with CUDA's grid, block, shared-memory and warp
// semantics. Used by the tests (tests/gpu/test_cpu_runtime.py) through gpu/cpu_runtime/__init__.py, a stand-in for
// cupy.RawModule / RawKernel; never by the model.
//
// Execution: every CUDA thread is a fiber (its own stack), all fibers of a block run on one OS thread, blocks are
//   shared out to a few OS threads. A fiber runs until it reaches a barrier, then the next one runs; the order between
//   barriers is the launch's schedule (forward, reverse, shuffled, one warp at a time), so a race shows up as a
//   result that depends on the schedule.
// Shared memory: __shared__ is thread_local, one copy per OS thread = per running block. The dynamic array (extern
//   __shared__) is filled with the poison byte 0xFF before each block (NaN as float or half, -1 as int) and every
//   byte past the launched size is checked after it: a write there is an error. Static __shared__ arrays are not
//   poisoned (they keep the previous block's values). The top of each fiber stack is poisoned too, which an
//   unoptimised build (-O0: locals on the stack) turns into NaN for an uninitialised local.
// Barriers: __syncthreads (and _or, _and, _count) wait for every thread of the block at the same barrier (file:line);
//   a thread that exited, or waits at another barrier, is reported with the block, the threads and both barriers.
//   __syncwarp, the warp shuffles and the nvcuda::wmma operations (include/mma.h) are barriers of the warp's lanes.
// Faults: a memory fault in a kernel (an argument is copied into pages with an inaccessible page right after its
//   last byte; each fiber stack has a guard page), __trap() and deadlocks come back to Python as the launch's error.
// Not modelled: memory consistency beyond barriers (a fiber runs alone until it blocks), cooperative groups,
//   atomics, textures, clusters. Launches are serialised (one at a time in a process).

#pragma once
#define CUDA_CPU_RUNTIME 1

#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define CUDA_CPU_ASAN 1
#endif

// CUDA's keywords for host C++. CUDA's own headers (cuda_fp16.h, included later by a kernel) keep these: they
// define theirs only where none exists.
#define __global__
#define __device__
#define __host__
#define __shared__ thread_local
#define __launch_bounds__(...)
#define __forceinline__ inline __attribute__((always_inline))
#define __align__(n) __attribute__((aligned(n)))

// CUDA's half-precision types, host code, from the toolkit (gpu/cpu_runtime finds its include folder). Included
// here, before the built-in variables below become macros (CUDA's headers use blockDim as a parameter name); a
// kernel's own #include of them is then a no-op.
#if __has_include(<cuda_fp16.h>)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#endif

namespace cuda_cpu {

constexpr unsigned WARP = 32;
constexpr size_t SMEM_CAPACITY = 227 * 1024;  // the launchable dynamic shared memory: sm_90's opt-in limit
constexpr size_t SMEM_GUARD = 4096;           // checked bytes beyond the capacity
constexpr unsigned char POISON = 0xFF;
#if defined(CUDA_CPU_ASAN)
constexpr size_t STACK_BYTES = 512 * 1024;
#else
constexpr size_t STACK_BYTES = 128 * 1024;
#endif

struct Dim3 { unsigned x = 1, y = 1, z = 1; };

unsigned char* dynamic_smem_base();  // this OS thread's extern __shared__ array (defined after the kernel source)

enum class Wait { RUNNABLE, BLOCK, WARP, DONE };
enum class Reduce { NONE, OR, AND, COUNT };
enum Schedule { FORWARD = 0, REVERSE = 1, SHUFFLE = 2, WARP_BY_WARP = 3 };

struct Fiber;

// Switching stacks. On x86-64 a hand-written switch: the callee-saved registers pushed on the old stack, the stack
// pointer exchanged (swapcontext would also make a system call for the signal mask, twice per switch, which is
// most of a launch's time). The x87 and SSE control words are not switched: the kernels do not change them.
// Elsewhere ucontext.
#if defined(__x86_64__)
struct Context { void* sp = nullptr; };
extern "C" void cuda_cpu_switch(void** save_sp, void* load_sp);
asm(R"(
    .text
    .globl cuda_cpu_switch
    .hidden cuda_cpu_switch
    .type cuda_cpu_switch, @function
cuda_cpu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size cuda_cpu_switch, .-cuda_cpu_switch
)");
inline void switch_context(Context* from, Context* to) { cuda_cpu_switch(&from->sp, to->sp); }
inline void make_context(Context* c, unsigned char* stack, size_t bytes, void (*entry)()) {
    void** sp = reinterpret_cast<void**>(stack + bytes);  // 16-byte aligned top
    *--sp = nullptr;                                      // entry's return address: it never returns
    *--sp = reinterpret_cast<void*>(entry);               // where cuda_cpu_switch's ret goes
    for (int r = 0; r < 6; ++r) *--sp = nullptr;          // rbp, rbx, r12..r15
    c->sp = sp;
}
#else
struct Context { ucontext_t uc; };
inline void switch_context(Context* from, Context* to) { swapcontext(&from->uc, &to->uc); }
inline void make_context(Context* c, unsigned char* stack, size_t bytes, void (*entry)()) {
    getcontext(&c->uc);
    c->uc.uc_stack.ss_sp = stack;
    c->uc.uc_stack.ss_size = bytes;
    c->uc.uc_link = nullptr;
    makecontext(&c->uc, entry, 0);
}
#endif

// A warp-wide operation (__syncwarp, a shuffle, a wmma call): each lane waits with its own WarpOp; when every lane
// of the mask waits at the same one, `complete` runs once for all of them before any lane continues.
struct WarpOp {
    unsigned mask;
    void (*complete)(WarpOp* const* lanes);  // lanes[l] is lane l's op, null for lanes outside the mask
};

struct Fiber {
    Context ctx;
    unsigned char* stack = nullptr;
    Dim3 thread_idx;
    unsigned tid = 0, lane = 0, warp = 0;
    Wait state = Wait::DONE;
    const char* what = "";  // the barrier it waits at: name, file, line
    const char* file = "";
    int line = 0;
    Reduce reduce = Reduce::NONE;
    int pred = 0, result = 0;
    WarpOp* op = nullptr;
#if defined(CUDA_CPU_ASAN)
    void* fake_stack = nullptr;
#endif
};

struct Launch;

struct Worker {
    Launch* launch = nullptr;
    std::vector<Fiber> fibers;
    unsigned char* stacks = nullptr;
    size_t stacks_bytes = 0;
    Context sched_ctx;
    sigjmp_buf fault_jmp;
    Dim3 block_idx;
    std::string error;
    std::mt19937_64 rng;
#if defined(CUDA_CPU_ASAN)
    const void* sched_stack_bottom = nullptr;
    size_t sched_stack_size = 0;
#endif
};

struct Launch {
    void (*run)(void**) = nullptr;
    void** params = nullptr;
    Dim3 grid, block;
    size_t smem = 0;
    int schedule = FORWARD;
    unsigned long long seed = 0;
    unsigned nthreads = 0, nwarps = 0;
    std::atomic<unsigned long long> next_block{0};
    std::atomic<bool> failed{false};
    std::mutex error_mutex;
    std::string error;
    struct Guarded {  // an array argument's copy: its pages, where its bytes start, its argument index
        unsigned char* map;
        size_t map_bytes;
        unsigned char* data;
        size_t nbytes;
        int index;
        bool writeback;
    };
    std::vector<Guarded> arrays;
};

inline thread_local Worker* tls_worker = nullptr;
inline thread_local Fiber* tls_fiber = nullptr;

inline Fiber* this_fiber() { return tls_fiber; }
inline Worker* this_worker() { return tls_worker; }
inline unsigned dynamic_smem_size() { return (unsigned)tls_worker->launch->smem; }

inline std::string block_name(const Worker* w) {
    char buf[64];
    snprintf(buf, sizeof buf, "block (%u,%u,%u)", w->block_idx.x, w->block_idx.y, w->block_idx.z);
    return buf;
}

inline std::string site(const char* what, const char* file, int line) {
    return std::string(what) + " at " + file + ":" + std::to_string(line);
}

// --- switching between a fiber and its block's scheduler ---------------------------------------------------------

inline void to_scheduler(Fiber* f, bool finished) {
    Worker* w = tls_worker;
#if defined(CUDA_CPU_ASAN)
    __sanitizer_start_switch_fiber(finished ? nullptr : &f->fake_stack, w->sched_stack_bottom, w->sched_stack_size);
#endif
    (void)finished;
    switch_context(&f->ctx, &w->sched_ctx);
#if defined(CUDA_CPU_ASAN)
    __sanitizer_finish_switch_fiber(f->fake_stack, &w->sched_stack_bottom, &w->sched_stack_size);
#endif
}

inline void resume(Worker* w, Fiber* f) {
#if defined(CUDA_CPU_ASAN)
    void* fake = nullptr;
    __sanitizer_start_switch_fiber(&fake, f->stack, STACK_BYTES);
#endif
    tls_fiber = f;
    switch_context(&w->sched_ctx, &f->ctx);
    tls_fiber = nullptr;
#if defined(CUDA_CPU_ASAN)
    __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
}

// An error inside a kernel: recorded for the block, and the fiber never runs again.
[[noreturn]] inline void fail(const std::string& message) {
    Worker* w = tls_worker;
    Fiber* f = tls_fiber;
    if (w->error.empty()) w->error = block_name(w) + ", thread " + std::to_string(f->tid) + ": " + message;
    f->state = Wait::DONE;
    to_scheduler(f, true);
    abort();  // never resumed
}

[[noreturn]] inline void trap(const char* file, int line) { fail(site("__trap()", file, line)); }

inline void fiber_entry() {
    Worker* w = tls_worker;
    Fiber* f = tls_fiber;
#if defined(CUDA_CPU_ASAN)
    __sanitizer_finish_switch_fiber(nullptr, &w->sched_stack_bottom, &w->sched_stack_size);
#endif
    w->launch->run(w->launch->params);
    f->state = Wait::DONE;
    to_scheduler(f, true);
    abort();
}

// --- barriers ----------------------------------------------------------------------------------------------------

inline int block_barrier(Reduce reduce, int pred, const char* what, const char* file, int line) {
    Fiber* f = tls_fiber;
    f->state = Wait::BLOCK;
    f->what = what, f->file = file, f->line = line;
    f->reduce = reduce, f->pred = pred;
    to_scheduler(f, false);
    return f->result;
}

inline void warp_wait(WarpOp* op, const char* what, const char* file, int line) {
    Fiber* f = tls_fiber;
    const unsigned nlanes = std::min(WARP, tls_worker->launch->nthreads - f->warp * WARP);
    if (!(op->mask >> f->lane & 1u))
        fail(site(what, file, line) + ": called by lane " + std::to_string(f->lane) + ", which is not in its mask");
    if (nlanes < WARP && (op->mask >> nlanes))
        fail(site(what, file, line) + ": the mask names lanes that do not exist in this warp");
    f->state = Wait::WARP;
    f->what = what, f->file = file, f->line = line;
    f->op = op;
    to_scheduler(f, false);
}

struct SyncWarp : WarpOp {};
inline void syncwarp(const char* file, int line, unsigned mask = 0xffffffffu) {
    SyncWarp op;
    op.mask = mask;
    op.complete = [](WarpOp* const*) {};
    warp_wait(&op, "__syncwarp", file, line);
}

// A shuffle: lane l receives the value of lane src(l); values travel as 8 bytes.
struct Shuffle : WarpOp {
    uint64_t in = 0, out = 0;
    int arg = 0, width = 32, kind = 0;  // kind 0 xor, 1 down, 2 up, 3 idx
};

inline void complete_shuffle(WarpOp* const* lanes) {
    for (unsigned l = 0; l < WARP; ++l) {
        if (!lanes[l]) continue;
        Shuffle* s = static_cast<Shuffle*>(lanes[l]);
        const int base = (int)l / s->width * s->width, offset = (int)l - base;
        int src;
        switch (s->kind) {
            case 0: src = base + ((offset ^ s->arg) & (s->width - 1)); break;
            case 1: src = offset + s->arg < s->width ? (int)l + s->arg : (int)l; break;
            case 2: src = offset - s->arg >= 0 ? (int)l - s->arg : (int)l; break;
            default: src = base + (s->arg & (s->width - 1)); break;
        }
        s->out = lanes[src] ? static_cast<Shuffle*>(lanes[src])->in : ~0ull;  // a lane outside the mask: undefined
    }
}

template <class T>
inline T shuffle(const char* what, const char* file, int line, int kind, unsigned mask, T value, int arg,
                 int width = 32) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a type larger than 8 bytes");
    Shuffle op;
    op.mask = mask;
    op.complete = complete_shuffle;
    op.kind = kind, op.arg = arg, op.width = width;
    memcpy(&op.in, &value, sizeof(T));
    warp_wait(&op, what, file, line);
    T out;
    memcpy(&out, &op.out, sizeof(T));
    return out;
}

// --- the scheduler of one block ----------------------------------------------------------------------------------

// Thread ids as runs: "0..39", "1..127 step 2", "5".
inline std::string thread_ranges(const std::vector<unsigned>& tids) {
    std::string s;
    for (size_t i = 0; i < tids.size();) {
        size_t j = i;
        const unsigned step = i + 1 < tids.size() ? tids[i + 1] - tids[i] : 1;
        while (j + 1 < tids.size() && tids[j + 1] - tids[j] == step) ++j;
        if (j < i + 2 && step != 1) j = i;  // two ids with a gap: not a run
        if (!s.empty()) s += ",";
        s += std::to_string(tids[i]);
        if (j > i) s += ".." + std::to_string(tids[j]) + (step == 1 ? "" : " step " + std::to_string(step));
        i = j + 1;
    }
    return s;
}

inline std::string fiber_site(const Fiber& f) {
    if (f.state == Wait::DONE) return "exited";
    if (f.state == Wait::RUNNABLE) return "running";
    return "waiting at " + site(f.what, f.file, f.line);
}

// Threads grouped by where they are: "threads 0..63 waiting at __syncthreads at x.cu:10; threads 64..127 exited".
inline std::string describe(const std::vector<Fiber*>& fibers) {
    std::vector<std::pair<std::string, std::vector<unsigned>>> groups;
    for (Fiber* f : fibers) {
        const std::string where = fiber_site(*f);
        auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.first == where; });
        if (it == groups.end()) groups.push_back({where, {f->tid}});
        else it->second.push_back(f->tid);
    }
    std::string s;
    for (auto& g : groups)
        s += (s.empty() ? "" : "; ") + std::string("threads ") + thread_ranges(g.second) + " " + g.first;
    return s;
}

// Completes the warp operation of warp `w` if all lanes of its mask wait at the same one; returns whether it did.
inline bool try_warp(Worker* W, unsigned w, std::string& error) {
    Launch* L = W->launch;
    const unsigned first = w * WARP, nlanes = std::min(WARP, L->nthreads - first);
    Fiber* lead = nullptr;
    for (unsigned l = 0; l < nlanes; ++l)
        if (W->fibers[first + l].state == Wait::WARP) { lead = &W->fibers[first + l]; break; }
    if (!lead) return false;
    const unsigned mask = lead->op->mask;
    WarpOp* lanes[WARP] = {};
    std::vector<Fiber*> in_mask;
    bool all_there = true;
    for (unsigned l = 0; l < nlanes; ++l) {
        if (!(mask >> l & 1u)) continue;
        Fiber& f = W->fibers[first + l];
        in_mask.push_back(&f);
        if (f.state == Wait::WARP && f.line == lead->line && !strcmp(f.file, lead->file) && f.op->mask == mask)
            lanes[l] = f.op;
        else if (f.state == Wait::DONE || f.state == Wait::WARP) {  // it can never arrive here
            for (unsigned m = l + 1; m < nlanes; ++m)
                if (mask >> m & 1u) in_mask.push_back(&W->fibers[first + m]);
            error = site(lead->what, lead->file, lead->line) + " (warp " + std::to_string(w) +
                    ") is not reached by every lane of its mask: " + describe(in_mask);
            return false;
        } else all_there = false;  // RUNNABLE, or waiting at a block barrier that may still complete
    }
    if (!all_there) return false;
    lead->op->complete(lanes);
    for (Fiber* f : in_mask) f->state = Wait::RUNNABLE;
    return true;
}

inline bool try_block(Worker* W, std::string& error) {
    Fiber* lead = nullptr;
    for (Fiber& f : W->fibers)
        if (f.state == Wait::BLOCK) { lead = &f; break; }
    if (!lead) return false;
    std::vector<Fiber*> all;
    bool same = true;
    for (Fiber& f : W->fibers) {
        all.push_back(&f);
        if (f.state != Wait::BLOCK || f.line != lead->line || strcmp(f.file, lead->file)) same = false;
    }
    if (!same) {
        error = site(lead->what, lead->file, lead->line) + " is not reached by every thread of the block: " +
                describe(all);
        return false;
    }
    int result = lead->reduce == Reduce::AND ? 1 : 0;
    for (Fiber& f : W->fibers) {
        if (lead->reduce == Reduce::OR) result |= f.pred != 0;
        else if (lead->reduce == Reduce::AND) result &= f.pred != 0;
        else if (lead->reduce == Reduce::COUNT) result += f.pred != 0;
    }
    for (Fiber& f : W->fibers) f.state = Wait::RUNNABLE, f.result = result;
    return true;
}

inline void run_fibers(Worker* W, std::vector<Fiber*>& order) {
    Launch* L = W->launch;
    if (L->schedule == REVERSE) std::reverse(order.begin(), order.end());
    else if (L->schedule == SHUFFLE) std::shuffle(order.begin(), order.end(), W->rng);
    for (Fiber* f : order) {
        if (f->state != Wait::RUNNABLE) continue;
        resume(W, f);
        if (!W->error.empty()) return;
    }
}

inline bool check_smem_guard(Worker* W) {
    const unsigned char* base = dynamic_smem_base();
    const size_t launched = W->launch->smem;
    for (size_t i = launched; i < SMEM_CAPACITY + SMEM_GUARD; ++i)
        if (base[i] != POISON) {
            W->error = block_name(W) + ": wrote byte " + std::to_string(i) + " of dynamic shared memory, past the " +
                       std::to_string(launched) + " bytes it was launched with";
            return false;
        }
    return true;
}

constexpr size_t STACK_POISON_BYTES = 32 * 1024;  // the top of each fiber stack, where the kernel's frames live

inline void run_block(Worker* W) {
    Launch* L = W->launch;
    memset(dynamic_smem_base(), POISON, SMEM_CAPACITY + SMEM_GUARD);
    for (unsigned t = 0; t < L->nthreads; ++t) {
        Fiber& f = W->fibers[t];
        f.tid = t, f.lane = t % WARP, f.warp = t / WARP;
        f.thread_idx.x = t % L->block.x;
        f.thread_idx.y = t / L->block.x % L->block.y;
        f.thread_idx.z = t / (L->block.x * L->block.y);
        f.state = Wait::RUNNABLE;
        f.stack = W->stacks + (size_t)t * (STACK_BYTES + 4096) + 4096;
        // uninitialised locals read the poison byte (NaN) where they live on the stack (an unoptimised build)
        memset(f.stack + STACK_BYTES - STACK_POISON_BYTES, POISON, STACK_POISON_BYTES);
        make_context(&f.ctx, f.stack, STACK_BYTES, fiber_entry);
    }
    if (sigsetjmp(W->fault_jmp, 1)) return;  // a memory fault in a fiber: W->error says where
    std::vector<Fiber*> order;
    while (true) {
        order.clear();
        if (L->schedule == WARP_BY_WARP) {  // the last warp first, each warp until it waits for the block
            for (int w = (int)L->nwarps - 1; w >= 0; --w) {
                std::string error;
                while (true) {
                    order.clear();
                    for (unsigned l = 0; l < WARP && w * WARP + l < L->nthreads; ++l)
                        if (W->fibers[w * WARP + l].state == Wait::RUNNABLE) order.push_back(&W->fibers[w * WARP + l]);
                    if (!order.empty()) run_fibers(W, order);
                    if (!W->error.empty()) return;
                    if (order.empty() && !try_warp(W, w, error)) break;
                    if (!W->error.empty()) return;
                }
            }
        } else {
            for (Fiber& f : W->fibers)
                if (f.state == Wait::RUNNABLE) order.push_back(&f);
            if (!order.empty()) {
                run_fibers(W, order);
                if (!W->error.empty()) return;
                continue;
            }
        }
        std::string error, block_error;
        bool progress = false;
        for (unsigned w = 0; w < L->nwarps; ++w) progress |= try_warp(W, w, error);
        if (!W->error.empty()) return;  // a warp operation found its lanes' arguments wrong
        if (progress) continue;
        if (try_block(W, block_error)) continue;
        if (error.empty()) error = block_error;
        bool done = true;
        for (Fiber& f : W->fibers) done &= f.state == Wait::DONE;
        if (done) break;
        if (error.empty()) {
            std::vector<Fiber*> all;
            for (Fiber& f : W->fibers) all.push_back(&f);
            error = "deadlock: " + describe(all);
        }
        W->error = block_name(W) + ": " + error;
        return;
    }
    check_smem_guard(W);
}

// --- memory faults -----------------------------------------------------------------------------------------------

inline Launch* g_launch = nullptr;
inline struct sigaction g_old_segv, g_old_bus;
inline thread_local char tls_fault_message[512];

inline void on_fault(int sig, siginfo_t* info, void*) {
    Worker* W = tls_worker;
    Fiber* f = tls_fiber;
    if (!W || !f) {  // not a kernel's fault: let the previous handler see it again
        sigaction(SIGSEGV, &g_old_segv, nullptr);
        sigaction(SIGBUS, &g_old_bus, nullptr);
        return;
    }
    const unsigned char* addr = static_cast<const unsigned char*>(info->si_addr);
    const unsigned char* stack_guard = W->stacks + (size_t)f->tid * (STACK_BYTES + 4096);
    if (addr >= stack_guard && addr < stack_guard + 4096) {
        snprintf(tls_fault_message, sizeof tls_fault_message, "stack overflow (more than %zu bytes of stack)",
                 STACK_BYTES);
    } else {
        snprintf(tls_fault_message, sizeof tls_fault_message, "%s at address %p, not in any argument",
                 sig == SIGBUS ? "bus error" : "memory fault", info->si_addr);
        for (auto& a : g_launch->arrays) {
            if (addr >= a.data + a.nbytes && addr < a.map + a.map_bytes) {
                snprintf(tls_fault_message, sizeof tls_fault_message,
                         "out-of-bounds access to argument %d (%zu bytes): byte %zu past its end", a.index, a.nbytes,
                         (size_t)(addr - (a.data + a.nbytes)));
                break;
            }
            if (addr >= a.map && addr < a.data) {
                snprintf(tls_fault_message, sizeof tls_fault_message,
                         "out-of-bounds access to argument %d (%zu bytes): before its first byte", a.index, a.nbytes);
                break;
            }
        }
    }
    W->error = block_name(W) + ", thread " + std::to_string(f->tid) + ": " + tls_fault_message;
    tls_fiber = nullptr;
    siglongjmp(W->fault_jmp, 1);
}

inline void worker_main(Launch* L) {
    Worker W;
    W.launch = L;
    tls_worker = &W;
    stack_t alt;
    alt.ss_size = 64 * 1024;
    alt.ss_sp = malloc(alt.ss_size);
    alt.ss_flags = 0;
    sigaltstack(&alt, nullptr);
    W.fibers.resize(L->nthreads);
    W.stacks_bytes = (size_t)L->nthreads * (STACK_BYTES + 4096);
    W.stacks = static_cast<unsigned char*>(
        mmap(nullptr, W.stacks_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0));
    for (unsigned t = 0; t < L->nthreads; ++t) mprotect(W.stacks + (size_t)t * (STACK_BYTES + 4096), 4096, PROT_NONE);
    const unsigned long long nblocks = (unsigned long long)L->grid.x * L->grid.y * L->grid.z;
    while (!L->failed.load()) {
        const unsigned long long b = L->next_block.fetch_add(1);
        if (b >= nblocks) break;
        W.block_idx.x = b % L->grid.x;
        W.block_idx.y = b / L->grid.x % L->grid.y;
        W.block_idx.z = b / ((unsigned long long)L->grid.x * L->grid.y);
        W.rng.seed(L->seed * 1000003ull + b);
        W.error.clear();
        run_block(&W);
        if (!W.error.empty()) {
            std::lock_guard<std::mutex> lock(L->error_mutex);
            if (L->error.empty()) L->error = W.error;
            L->failed = true;
        }
    }
    munmap(W.stacks, W.stacks_bytes);
    alt.ss_flags = SS_DISABLE;
    sigaltstack(&alt, nullptr);
    free(alt.ss_sp);
    tls_worker = nullptr;
}

inline std::mutex g_launch_mutex;

}  // namespace cuda_cpu

// CUDA's built-in variables and functions, as the kernels name them
#define threadIdx (cuda_cpu::this_fiber()->thread_idx)
#define blockIdx (cuda_cpu::this_worker()->block_idx)
#define blockDim (cuda_cpu::this_worker()->launch->block)
#define gridDim (cuda_cpu::this_worker()->launch->grid)
#define warpSize 32

#define __syncthreads() cuda_cpu::block_barrier(cuda_cpu::Reduce::NONE, 0, "__syncthreads", __FILE__, __LINE__)
#define __syncthreads_or(p) cuda_cpu::block_barrier(cuda_cpu::Reduce::OR, (p), "__syncthreads_or", __FILE__, __LINE__)
#define __syncthreads_and(p) \
    cuda_cpu::block_barrier(cuda_cpu::Reduce::AND, (p), "__syncthreads_and", __FILE__, __LINE__)
#define __syncthreads_count(p) \
    cuda_cpu::block_barrier(cuda_cpu::Reduce::COUNT, (p), "__syncthreads_count", __FILE__, __LINE__)
#define __syncwarp(...) cuda_cpu::syncwarp(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)
#define __shfl_xor_sync(mask, v, ...) \
    cuda_cpu::shuffle("__shfl_xor_sync", __FILE__, __LINE__, 0, (mask), (v), __VA_ARGS__)
#define __shfl_down_sync(mask, v, ...) \
    cuda_cpu::shuffle("__shfl_down_sync", __FILE__, __LINE__, 1, (mask), (v), __VA_ARGS__)
#define __shfl_up_sync(mask, v, ...) \
    cuda_cpu::shuffle("__shfl_up_sync", __FILE__, __LINE__, 2, (mask), (v), __VA_ARGS__)
#define __shfl_sync(mask, v, ...) cuda_cpu::shuffle("__shfl_sync", __FILE__, __LINE__, 3, (mask), (v), __VA_ARGS__)
#define __trap() cuda_cpu::trap(__FILE__, __LINE__)

inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
inline float __int_as_float(int i) { float f; memcpy(&f, &i, 4); return f; }
inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
inline int __float_as_int(float f) { int i; memcpy(&i, &f, 4); return i; }
template <class T> inline T min(T a, T b) { return b < a ? b : a; }
template <class T> inline T max(T a, T b) { return a < b ? b : a; }

// The launch, called from Python (gpu/cpu_runtime/__init__.py) with cuLaunchKernel's argument convention: params[i]
// points to argument i. array_bytes[i] >= 0 marks a pointer argument to an array of that many bytes (it is copied
// into guarded pages for the launch and, where writable[i], back after it), -1 a scalar. Returns 0, or 1 with the
// error in `error`.
extern "C" int cuda_cpu_launch(void (*run)(void**), const unsigned* grid, const unsigned* block,
                               unsigned long long smem,
                               void** params, int nparams, const long long* array_bytes,
                               const int* writable, int schedule,
                               unsigned long long seed, int workers, char* error, int error_size) {
    using namespace cuda_cpu;
    std::lock_guard<std::mutex> serial(g_launch_mutex);
    Launch L;
    L.run = run;
    L.grid = {grid[0], grid[1], grid[2]};
    L.block = {block[0], block[1], block[2]};
    L.smem = smem;
    L.schedule = schedule;
    L.seed = seed;
    L.nthreads = block[0] * block[1] * block[2];
    L.nwarps = (L.nthreads + WARP - 1) / WARP;
    auto refuse = [&](const std::string& m) { snprintf(error, error_size, "%s", m.c_str()); return 1; };
    if (L.nthreads == 0 || L.nthreads > 1024)
        return refuse("a block has 1..1024 threads, got " + std::to_string(L.nthreads));
    if (!grid[0] || !grid[1] || !grid[2] || grid[1] > 65535 || grid[2] > 65535)
        return refuse("grid dimensions must be >= 1 (y and z <= 65535)");
    if (smem > SMEM_CAPACITY)
        return refuse("dynamic shared memory above the device's " + std::to_string(SMEM_CAPACITY));

    std::vector<void*> args(params, params + nparams);
    std::vector<void*> pointers(nparams);
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < nparams; ++i) {
        if (array_bytes[i] < 0) continue;
        const size_t nbytes = (size_t)array_bytes[i];
        const size_t data_pages = (nbytes + page - 1) / page;
        Launch::Guarded g;
        g.map_bytes = (data_pages + 2) * page;
        g.map = static_cast<unsigned char*>(
            mmap(nullptr, g.map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
        mprotect(g.map, page, PROT_NONE);
        mprotect(g.map + (data_pages + 1) * page, page, PROT_NONE);
        g.data = g.map + (data_pages + 1) * page - nbytes;  // the last byte right before the inaccessible page
        g.nbytes = nbytes;
        g.index = i;
        g.writeback = writable[i] != 0;
        memcpy(g.data, *static_cast<void**>(params[i]), nbytes);
        pointers[i] = g.data;
        args[i] = &pointers[i];
        L.arrays.push_back(g);
    }
    L.params = args.data();

    struct sigaction on;
    memset(&on, 0, sizeof on);
    on.sa_sigaction = on_fault;
    on.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&on.sa_mask);
    g_launch = &L;
    sigaction(SIGSEGV, &on, &g_old_segv);
    sigaction(SIGBUS, &on, &g_old_bus);

    const unsigned long long nblocks = (unsigned long long)grid[0] * grid[1] * grid[2];
    const unsigned n = (unsigned)std::min<unsigned long long>((unsigned long long)std::max(workers, 1), nblocks);
    std::vector<std::thread> pool;
    for (unsigned t = 0; t < n; ++t) pool.emplace_back(worker_main, &L);
    for (auto& t : pool) t.join();

    sigaction(SIGSEGV, &g_old_segv, nullptr);
    sigaction(SIGBUS, &g_old_bus, nullptr);
    g_launch = nullptr;
    for (auto& g : L.arrays) {
        if (g.writeback) memcpy(*static_cast<void**>(params[g.index]), g.data, g.nbytes);
        munmap(g.map, g.map_bytes);
    }
    if (L.failed) return refuse(L.error);
    return 0;
}

// The signature of a kernel as Python checks its arguments: "f4,*f4,*i4" (float, float*, int*), one code a parameter.
namespace cuda_cpu {
template <class T> inline std::string type_code() {
    using U = std::remove_cv_t<T>;
    if constexpr (std::is_pointer<U>::value) return "*" + type_code<std::remove_pointer_t<U>>();
    else if constexpr (std::is_same<U, float>::value) return "f4";
    else if constexpr (std::is_same<U, double>::value) return "f8";
    else if constexpr (std::is_same<U, int>::value) return "i4";
    else if constexpr (std::is_same<U, unsigned>::value) return "u4";
    else if constexpr (std::is_same<U, long long>::value || std::is_same<U, long>::value) return "i8";
    else if constexpr (std::is_same<U, unsigned long long>::value || std::is_same<U, unsigned long>::value) return "u8";
    else if constexpr (std::is_same<U, unsigned char>::value || std::is_same<U, char>::value) return "u1";
    else if constexpr (sizeof(U) == 2) return "f2";  // __half, __nv_bfloat16
    else return "?";
}

template <class... A> inline const char* signature(void (*)(A...)) {
    static const std::string s = [] {
        std::string r;
        ((r += (r.empty() ? "" : ","), r += type_code<A>()), ...);
        return r;
    }();
    return s.c_str();
}

template <class... A, size_t... I> inline void call(void (*f)(A...), void** p, std::index_sequence<I...>) {
    f(*static_cast<std::remove_cv_t<std::remove_reference_t<A>>*>(p[I])...);
}
template <class... A> inline void call(void (*f)(A...), void** p) { call(f, p, std::index_sequence_for<A...>{}); }
}  // namespace cuda_cpu
