// planted_bugs.cpp: one kernel per class of bug the race and barrier checker
// must catch, each next to its fixed twin that must run clean. They run only in
// the emulator (tests/cuda_emu_races.rs), through cf_emu_run_planted, which
// owns their buffers and launch shapes so a scenario is one name.
#include "cuda_emu.h"

#include <cstdio>
#include <map>

namespace {

// Shared memory, two warps: thread t writes s[t] and reads s[t ^ 32], a thread
// of the other warp; `fixed` puts the barrier between the two.
__global__ void planted_shared_race(float* out, int fixed) {
    __shared__ float s[64];
    s[threadIdx.x] = (float)threadIdx.x;
    if (fixed) __syncthreads();
    out[threadIdx.x] = s[threadIdx.x ^ 32];
}

// One warp: lane l writes s[l] and reads s[l ^ 1] relying on lockstep; `fixed`
// puts a __syncwarp between the two.
__global__ void planted_warp_race(float* out, int fixed) {
    __shared__ float s[32];
    s[threadIdx.x] = (float)threadIdx.x;
    if (fixed) __syncwarp();
    out[threadIdx.x] = s[threadIdx.x ^ 1];
}

// Every block stores its partial sum into out[0]; `fixed` adds it atomically.
__global__ void planted_global_race(float* out, int fixed) {
    if (threadIdx.x != 0) return;
    if (fixed) atomicAdd(out, 1.0f);
    else out[0] = (float)blockIdx.x;
}

// Threads 0..15 leave before the block barrier the others wait at; `fixed`
// keeps them in the block until after it.
__global__ void planted_divergent_barrier(float* out, int fixed) {
    __shared__ float s[64];
    if (!fixed && threadIdx.x < 16) return;
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    if (threadIdx.x < 16) return;
    out[threadIdx.x] = s[63 - threadIdx.x];
}

struct Scenario {
    void (*kernel)(float*, int);
    unsigned blocks, threads, out_floats;
};

const std::map<std::string, Scenario>& scenarios() {
    static const std::map<std::string, Scenario> table = {
        {"planted_shared_race", {planted_shared_race, 1, 64, 64}},
        {"planted_warp_race", {planted_warp_race, 1, 32, 32}},
        {"planted_global_race", {planted_global_race, 3, 32, 1}},
        {"planted_divergent_barrier", {planted_divergent_barrier, 1, 64, 64}},
    };
    return table;
}

}  // namespace

// Runs scenario `name` (its buggy kernel, or its fixed twin when `fixed`).
// Returns 0, or 1 with the emulator's report in `err`.
extern "C" int cf_emu_run_planted(const char* name, int fixed, char* err, size_t err_len) {
    auto it = scenarios().find(name);
    std::string error;
    if (it == scenarios().end()) {
        error = std::string("no planted scenario named ") + name;
    } else {
        const Scenario& s = it->second;
        std::vector<float> out(s.out_floats, 0.0f);
        emu::race::watch_buffer(out.data(), out.size() * sizeof(float));
        error = emu::launch(dim3(s.blocks), dim3(s.threads), 0, [&] { s.kernel(out.data(), fixed); });
        emu::race::unwatch_buffer(out.data());
        if (!error.empty()) error = std::string(name) + ": " + error;
    }
    if (err_len) std::snprintf(err, err_len, "%s", error.c_str());
    return error.empty() ? 0 : 1;
}
