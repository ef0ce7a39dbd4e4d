// selftest.cu: tiny kernels that pin down the emulator's own semantics (warp
// shuffles and votes, atomics, shared memory, poisoning, error detection).
// They run only in the emulator (tests/cuda_emu.rs), never on a GPU.
#include "../common.cuh"

// 8 results per thread: shuffles down/up/xor/indexed, ballot, any, all, warp_sum.
// block: 64 (two warps).
extern "C" __global__ void selftest_warp_ops(int* out) {
    const int tid = threadIdx.x, lane = tid % 32;
    int* o = out + tid * 8;
    o[0] = __shfl_down_sync(FULL_MASK, tid, 3);
    o[1] = __shfl_up_sync(FULL_MASK, tid, 2);
    o[2] = __shfl_xor_sync(FULL_MASK, tid, 5);
    o[3] = __shfl_sync(FULL_MASK, tid, 7);
    o[4] = (int)__ballot_sync(FULL_MASK, lane % 3 == 0);
    o[5] = __any_sync(FULL_MASK, tid == 40);
    o[6] = __all_sync(FULL_MASK, lane < 31);
    o[7] = (int)warp_sum((float)lane);
}

// out[0] += 1 per thread of the grid (global atomics); out[1 + block] = the
// block's thread count, counted with a shared-memory atomic.
extern "C" __global__ void selftest_atomics(float* out) {
    __shared__ int count;
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    atomicAdd(&count, 1);
    atomicAdd(out, 1.0f);
    __syncthreads();
    if (threadIdx.x == 0) out[1 + blockIdx.x] = (float)count;
}

// Each thread writes s[t] then reads its neighbour's s[t+1]; with_barrier = 0
// leaves out the __syncthreads between the two. block: 32.
extern "C" __global__ void selftest_neighbour(float* out, int with_barrier) {
    __shared__ float s[32];
    s[threadIdx.x] = (float)(threadIdx.x + 100 * blockIdx.x);
    if (with_barrier) __syncthreads();
    out[blockIdx.x * 32 + threadIdx.x] = s[(threadIdx.x + 1) % 32];
}

// Lane 5 leaves before a full-warp reduction: undefined on a GPU, an error here.
extern "C" __global__ void selftest_exited_lane(float* out) {
    if (threadIdx.x == 5) return;
    out[threadIdx.x] = warp_sum(1.0f);
}

// Half a warp waits at __syncthreads, the other half in __syncwarp: a deadlock.
extern "C" __global__ void selftest_divergent_barrier(float* out) {
    if (threadIdx.x < 16) __syncthreads();
    else __syncwarp();
    out[threadIdx.x] = 1.0f;
}

// Reads dynamic shared memory nobody wrote: the poison (NaN) shows.
extern "C" __global__ void selftest_unwritten_shared(float* out) {
    DYNAMIC_SHARED(float, smem);
    out[threadIdx.x] = smem[threadIdx.x];
}
