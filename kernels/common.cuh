// common.cuh: what every kernel file shares: warp/block reductions, the GELU
// formula, and the Philox 4x32-10 generator (bit-identical to src/rng.rs).
// Kernels only use built-ins, so NVRTC compiles them without CUDA headers, and
// with CONVFORMER_EMU defined they compile as C++ against the CPU emulator.
#pragma once

#ifdef CONVFORMER_EMU
#include "emu/cuda_emu.h"
#define DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(emu::dynamic_shared())
#else
#define DYNAMIC_SHARED(type, name) extern __shared__ type name[]
#endif

// Full unrolling keeps small fixed-size arrays (accumulator tiles) in registers.
#ifdef CONVFORMER_EMU
#define CF_UNROLL
#else
#define CF_UNROLL _Pragma("unroll")
#endif

#define FULL_MASK 0xffffffffu
#define CF_INF __int_as_float(0x7f800000)

// Sum over the 32 lanes of a warp; every lane gets the total.
__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(FULL_MASK, v, offset);
    return v;
}

// Maximum over the 32 lanes of a warp; every lane gets it.
__device__ __forceinline__ float warp_max(float v) {
    for (int offset = 16; offset > 0; offset >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL_MASK, v, offset));
    return v;
}

// Sum over a 1-D block whose size is a multiple of 32; every thread gets the
// total. `scratch` is 32 floats of shared memory, free again on return.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x % 32;
    const int warp = threadIdx.x / 32;
    const int warps = blockDim.x / 32;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.0f;
    v = warp_sum(v);
    __syncthreads();  // scratch may be reused by the caller
    return v;
}

// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#define GELU_SQRT_2_OVER_PI 0.7978845608028654f
#define GELU_COEF 0.044715f
__device__ __forceinline__ float gelu_forward(float x) {
    float u = GELU_SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x);
    return 0.5f * x * (1.0f + tanhf(u));
}
__device__ __forceinline__ float gelu_derivative(float x) {
    float u = GELU_SQRT_2_OVER_PI * (x + GELU_COEF * x * x * x);
    float t = tanhf(u);
    float du = GELU_SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_COEF * x * x);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du;
}

// Philox 4x32-10 (Salmon et al., Random123): 10 rounds of multiply-xor with a
// Weyl-sequence key schedule. out[j] for counter c and key k.
struct Philox4 {
    unsigned v[4];
};
__device__ __forceinline__ Philox4 philox4x32_10(unsigned c0, unsigned c1, unsigned c2, unsigned c3, unsigned k0,
                                                 unsigned k1) {
    for (int round = 0; round < 10; ++round) {
        unsigned hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        unsigned hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        unsigned n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    Philox4 r;
    r.v[0] = c0;
    r.v[1] = c1;
    r.v[2] = c2;
    r.v[3] = c3;
    return r;
}
