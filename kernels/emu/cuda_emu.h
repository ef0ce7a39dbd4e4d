// cuda_emu.h: runs unmodified CUDA kernels on the CPU, for tests without a GPU.
//
// The technique of HIP-CPU and of LHCb's CPU backend, written small:
//  * every CUDA thread of a block is a fiber (ucontext) with its own stack; the
//    blocks of a grid run one after another;
//  * fibers are switched cooperatively, in thread order, and only at
//    __syncthreads, __syncwarp and the warp collectives. So thread 0 runs
//    until its first barrier before thread 1 starts: a missing barrier makes a
//    thread read shared memory its neighbours have not written yet, and that
//    shows deterministically instead of once in a while;
//  * `__shared__` variables are function statics (blocks never overlap) placed
//    in one ELF section, which is poisoned with NaN (all-ones bytes) before each
//    block, as is the per-launch buffer behind the dynamic shared memory;
//  * warp shuffles/votes exchange values through a per-warp slot array; reading
//    from a lane that did not take part in the same collective is an error;
//  * atomics are plain read-modify-writes (one OS thread runs the launch);
//  * device buffers (cf_emu_alloc in emu_api.cpp) carry poisoned guard zones,
//    checked after every launch;
//  * every shared-memory access and every device-memory write goes through the
//    race checker (race.h), and a __syncthreads that only part of a block
//    reaches, or that threads reach at different call sites, is an error.
// Only one launch runs at a time (the statics behind __shared__ are global).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <ucontext.h>
#include <vector>

#include "race.h"

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__ __restrict
#define __launch_bounds__(...)
// Blocks run one at a time, so one static per __shared__ variable is enough;
// the section lets the scheduler poison all of them before each block (the
// linker defines __start_/__stop_ symbols around a section named like this).
#define __shared__ __attribute__((section("cf_emu_shared"))) static
extern "C" __attribute__((weak)) char __start_cf_emu_shared[];
extern "C" __attribute__((weak)) char __stop_cf_emu_shared[];

// The built-in index variables; the scheduler sets them at every fiber switch.
inline uint3 threadIdx;
inline uint3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
constexpr int warpSize = 32;

namespace emu {

enum class FiberState { Ready, AtBarrier, AtWarp, Done };

/// One grid launch: the fibers of the current block and the warp exchange slots.
struct Launch {
    std::function<void()> body;
    unsigned nthreads = 0;
    unsigned current = 0;
    std::vector<FiberState> state;
    std::vector<ucontext_t> ctx;
    std::vector<unsigned long long> warp_ops;  // collectives each thread has entered
    // slots[parity][thread] and the op number that wrote it (double-buffered so a
    // fast lane's next collective cannot overwrite what a slow lane still reads).
    std::vector<unsigned long long> slot_value[2];
    std::vector<unsigned long long> slot_op[2];
    std::vector<unsigned char> dyn_shared;
    std::vector<const char*> barrier_file;  // where each thread waits in __syncthreads
    std::vector<int> barrier_line;
    ucontext_t scheduler;
    std::string error;
};

constexpr size_t kStackBytes = 128 * 1024;

inline Launch*& current_launch() {
    static Launch* launch = nullptr;
    return launch;
}

/// Stacks are kept between launches: allocating 1024 of them per block is slow.
inline std::vector<std::unique_ptr<char[]>>& stack_pool() {
    static std::vector<std::unique_ptr<char[]>> pool;
    return pool;
}

inline void set_thread_index(unsigned t) {
    threadIdx.x = t % blockDim.x;
    threadIdx.y = (t / blockDim.x) % blockDim.y;
    threadIdx.z = t / (blockDim.x * blockDim.y);
}

/// Back to the scheduler; returns when this fiber is scheduled again.
inline void yield_to_scheduler(FiberState why) {
    Launch& l = *current_launch();
    unsigned me = l.current;
    l.state[me] = why;
    swapcontext(&l.ctx[me], &l.scheduler);
}

/// Stops the launch with an error; the fiber is never resumed.
[[noreturn]] inline void fail(const std::string& what) {
    Launch& l = *current_launch();
    if (l.error.empty()) {
        l.error = "thread (" + std::to_string(threadIdx.x) + "," + std::to_string(threadIdx.y) + "," +
                  std::to_string(threadIdx.z) + ") of block (" + std::to_string(blockIdx.x) + "," +
                  std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + "): " + what;
    }
    yield_to_scheduler(FiberState::Done);
    __builtin_unreachable();
}

inline void fiber_entry() {
    Launch& l = *current_launch();
    l.body();
    l.state[l.current] = FiberState::Done;  // uc_link returns to the scheduler
}

inline void* dynamic_shared() {
    return current_launch()->dyn_shared.data();
}

inline const char* base_name(const char* path) {
    const char* slash = std::strrchr(path, '/');
    return slash ? slash + 1 : path;
}

inline std::string thread_and_site(const Launch& l, unsigned t) {
    std::string who = "thread " + std::to_string(t);
    if (l.state[t] == FiberState::AtBarrier)
        return who + " waits at " + base_name(l.barrier_file[t]) + ":" + std::to_string(l.barrier_line[t]);
    return who + (l.state[t] == FiberState::Done ? " has exited" : " waits in a warp collective");
}

/// The synccheck rule: a block barrier is released only when every thread of
/// the block waits at that same __syncthreads. Returns the error, or "".
inline std::string divergent_barrier(const Launch& l) {
    unsigned waiting = l.nthreads;
    for (unsigned t = 0; t < l.nthreads && waiting == l.nthreads; ++t)
        if (l.state[t] == FiberState::AtBarrier) waiting = t;
    for (unsigned t = 0; t < l.nthreads; ++t) {
        const bool same = l.state[t] == FiberState::AtBarrier && l.barrier_line[t] == l.barrier_line[waiting] &&
                          std::strcmp(l.barrier_file[t], l.barrier_file[waiting]) == 0;
        if (!same)
            return "divergent __syncthreads in block (" + std::to_string(blockIdx.x) + "," +
                   std::to_string(blockIdx.y) + "," + std::to_string(blockIdx.z) + "): " + thread_and_site(l, waiting) +
                   " while " + thread_and_site(l, t);
    }
    return "";
}

/// Runs one block to completion. Returns false when the launch failed.
EMU_UNTRACKED inline bool run_block(Launch& l) {
    auto& pool = stack_pool();
    while (pool.size() < l.nthreads) pool.emplace_back(new char[kStackBytes]);
    // Poison shared memory (all-ones bits: a NaN) so reads of unwritten (or not
    // yet written) elements show.
    std::memset(l.dyn_shared.data(), 0xff, l.dyn_shared.size());
    char* shared_begin = __start_cf_emu_shared;
    char* shared_end = __stop_cf_emu_shared;
    if (shared_begin && shared_end > shared_begin)
        std::memset(shared_begin, 0xff, static_cast<size_t>(shared_end - shared_begin));
    for (unsigned t = 0; t < l.nthreads; ++t) {
        l.state[t] = FiberState::Ready;
        l.warp_ops[t] = 0;
        getcontext(&l.ctx[t]);
        l.ctx[t].uc_stack.ss_sp = pool[t].get();
        l.ctx[t].uc_stack.ss_size = kStackBytes;
        l.ctx[t].uc_link = &l.scheduler;
        makecontext(&l.ctx[t], fiber_entry, 0);
    }
    for (;;) {
        for (unsigned t = 0; t < l.nthreads; ++t) {
            if (l.state[t] != FiberState::Ready) continue;
            l.current = t;
            set_thread_index(t);
            swapcontext(&l.scheduler, &l.ctx[t]);
            if (!l.error.empty()) return false;
        }
        // Nobody is ready: release a warp whose live lanes all wait in a collective,
        // else the block barrier once every live thread waits there.
        bool released = false;
        for (unsigned w = 0; w * 32 < l.nthreads; ++w) {
            unsigned end = std::min(l.nthreads, w * 32 + 32);
            bool any = false, all = true;
            for (unsigned t = w * 32; t < end; ++t) {
                if (l.state[t] == FiberState::Done) continue;
                any = true;
                all = all && l.state[t] == FiberState::AtWarp;
            }
            if (any && all) {
                for (unsigned t = w * 32; t < end; ++t)
                    if (l.state[t] == FiberState::AtWarp) l.state[t] = FiberState::Ready;
                race::warp_passed(w);
                released = true;
            }
        }
        if (released) continue;
        unsigned live = 0;
        for (unsigned t = 0; t < l.nthreads; ++t) live += l.state[t] != FiberState::Done;
        if (live == 0) return true;
        l.error = divergent_barrier(l);
        if (!l.error.empty()) {
            bool in_collective = false;
            for (unsigned t = 0; t < l.nthreads; ++t) in_collective |= l.state[t] == FiberState::AtWarp;
            if (in_collective) l.error = "deadlock: " + l.error;
            return false;
        }
        for (unsigned t = 0; t < l.nthreads; ++t) l.state[t] = FiberState::Ready;
        race::barrier_passed();
    }
}

/// Held for the whole of a launch: the index variables, the __shared__ statics
/// and the race checker's state are global.
inline std::mutex& launch_mutex() {
    static std::mutex m;
    return m;
}

/// Runs `body` as the kernel of a grid. Returns an empty string or the error.
inline std::string launch(dim3 grid, dim3 block, size_t shared_bytes, std::function<void()> body) {
    std::lock_guard<std::mutex> lock(launch_mutex());
    Launch l;
    l.body = std::move(body);
    l.nthreads = block.x * block.y * block.z;
    if (l.nthreads == 0 || l.nthreads > 1024) return "block of " + std::to_string(l.nthreads) + " threads";
    if (grid.x == 0 || grid.y == 0 || grid.z == 0) return "empty grid";
    if (grid.y > 65535 || grid.z > 65535) return "grid.y/z above 65535";
    if (shared_bytes > 48 * 1024) return "more than 48 KiB of dynamic shared memory";
    l.state.resize(l.nthreads);
    l.ctx.resize(l.nthreads);
    l.warp_ops.resize(l.nthreads);
    for (int p = 0; p < 2; ++p) {
        l.slot_value[p].assign(l.nthreads, 0);
        l.slot_op[p].assign(l.nthreads, ~0ull);
    }
    l.dyn_shared.resize(shared_bytes + 16);
    l.barrier_file.assign(l.nthreads, "");
    l.barrier_line.assign(l.nthreads, 0);
    gridDim = grid;
    blockDim = block;
    current_launch() = &l;
    race::begin_launch(l.dyn_shared.data(), shared_bytes, l.nthreads);
    for (unsigned z = 0; z < grid.z && l.error.empty(); ++z)
        for (unsigned y = 0; y < grid.y && l.error.empty(); ++y)
            for (unsigned x = 0; x < grid.x && l.error.empty(); ++x) {
                blockIdx = {x, y, z};
                race::begin_block((z * grid.y + y) * grid.x + x);
                run_block(l);
            }
    race::end_launch();
    current_launch() = nullptr;
    return l.error;
}

/// One warp collective: publishes `v`, waits for the live lanes of the warp,
/// then hands back the slot array (indexed by thread) of this collective.
struct Exchange {
    const unsigned long long* values;
    unsigned long long op;
    int parity;
    unsigned warp_base;
    unsigned warp_lanes;
    unsigned lane;

    unsigned long long from(unsigned src_lane) const {
        Launch& l = *current_launch();
        if (src_lane >= warp_lanes) fail("warp collective reads lane " + std::to_string(src_lane) + " beyond the block");
        if (l.slot_op[parity][warp_base + src_lane] != op)
            fail("warp collective reads lane " + std::to_string(src_lane) + ", which did not take part");
        return values[warp_base + src_lane];
    }
    bool took_part(unsigned src_lane) const {
        return src_lane < warp_lanes && current_launch()->slot_op[parity][warp_base + src_lane] == op;
    }
};

EMU_UNTRACKED inline Exchange exchange(unsigned long long v) {
    Launch& l = *current_launch();
    unsigned me = l.current;
    unsigned long long op = l.warp_ops[me]++;
    int parity = static_cast<int>(op & 1);
    l.slot_value[parity][me] = v;
    l.slot_op[parity][me] = op;
    yield_to_scheduler(FiberState::AtWarp);
    unsigned base = me / 32 * 32;
    return Exchange{l.slot_value[parity].data(), op, parity, base, std::min(32u, l.nthreads - base), me - base};
}

template <typename T>
unsigned long long to_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    unsigned long long b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <typename T>
T from_bits(unsigned long long b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}

}  // namespace emu

namespace emu {
inline void sync_threads(const char* file, int line) {
    Launch& l = *current_launch();
    l.barrier_file[l.current] = file;
    l.barrier_line[l.current] = line;
    yield_to_scheduler(FiberState::AtBarrier);
}
}  // namespace emu

// ---- barriers, shuffles, votes ----
// A macro, so a divergent barrier is reported with its call site.
#define __syncthreads() emu::sync_threads(__FILE__, __LINE__)
inline void __syncwarp(unsigned = 0xffffffffu) {
    emu::exchange(0);
}
template <typename T>
T __shfl_sync(unsigned, T v, int src, int width = 32) {
    auto x = emu::exchange(emu::to_bits(v));
    unsigned seg = x.lane / width * width;
    return emu::from_bits<T>(x.from(seg + (static_cast<unsigned>(src) % width)));
}
template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    auto x = emu::exchange(emu::to_bits(v));
    unsigned src = x.lane ^ static_cast<unsigned>(lane_mask);
    if (src / width != x.lane / width) return v;
    return emu::from_bits<T>(x.from(src));
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    auto x = emu::exchange(emu::to_bits(v));
    unsigned src = x.lane + delta;
    if (src / width != x.lane / width) return v;
    return emu::from_bits<T>(x.from(src));
}
template <typename T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    auto x = emu::exchange(emu::to_bits(v));
    if (x.lane % width < delta) return v;
    return emu::from_bits<T>(x.from(x.lane - delta));
}
inline unsigned __ballot_sync(unsigned, int pred) {
    auto x = emu::exchange(pred != 0);
    unsigned bits = 0;
    for (unsigned lane = 0; lane < x.warp_lanes; ++lane)
        if (x.took_part(lane) && x.from(lane)) bits |= 1u << lane;
    return bits;
}
inline int __any_sync(unsigned mask, int pred) {
    return __ballot_sync(mask, pred) != 0;
}
inline int __all_sync(unsigned, int pred) {
    auto x = emu::exchange(pred != 0);
    for (unsigned lane = 0; lane < x.warp_lanes; ++lane)
        if (x.took_part(lane) && !x.from(lane)) return 0;
    return 1;
}

// ---- atomics: one OS thread runs the launch, so a plain update is atomic ----
// (untracked as accesses; they tell the race checker they are atomics)
template <typename T>
EMU_UNTRACKED T atomicAdd(T* p, T v) {
    emu::race::atomic_update(p, sizeof(T));
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T>
EMU_UNTRACKED T atomicExch(T* p, T v) {
    emu::race::atomic_update(p, sizeof(T));
    T old = *p;
    *p = v;
    return old;
}
EMU_UNTRACKED inline int atomicCAS(int* p, int compare, int v) {
    emu::race::atomic_update(p, sizeof(int));
    int old = *p;
    if (old == compare) *p = v;
    return old;
}
EMU_UNTRACKED inline int atomicMax(int* p, int v) {
    emu::race::atomic_update(p, sizeof(int));
    int old = *p;
    if (v > old) *p = v;
    return old;
}

// ---- device math and bit casts that CUDA has and C++ lacks ----
inline float rsqrtf(float x) {
    return 1.0f / std::sqrt(x);
}
inline float __expf(float x) {
    return std::exp(x);
}
inline float __fdividef(float a, float b) {
    return a / b;
}
inline float __int_as_float(int i) {
    return emu::from_bits<float>(static_cast<unsigned>(i));
}
inline int __float_as_int(float f) {
    return static_cast<int>(emu::to_bits(f));
}
inline float __uint_as_float(unsigned u) {
    return emu::from_bits<float>(u);
}
inline unsigned __float_as_uint(float f) {
    return static_cast<unsigned>(emu::to_bits(f));
}
inline unsigned __umulhi(unsigned a, unsigned b) {
    return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline int min(int a, int b) {
    return a < b ? a : b;
}
inline int max(int a, int b) {
    return a > b ? a : b;
}
inline long long min(long long a, long long b) {
    return a < b ? a : b;
}
inline long long max(long long a, long long b) {
    return a > b ? a : b;
}
