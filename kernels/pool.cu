// pool.cu: mean over one axis. x is viewed as [outer, A, inner] (A = the pooled
// axis), y as [outer, inner].
#include "common.cuh"

// y[o, i] = (1/A) sum_a x[o, a, i]. One thread per output (grid-stride).
extern "C" __global__ void mean_pool_fwd(const float* __restrict__ x, float* __restrict__ y, long long outer, int A,
                                         long long inner) {
    const long long n = outer * inner;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const long long o = e / inner, i = e % inner;
        const float* xo = x + o * A * inner + i;
        float s = 0.0f;
        for (int a = 0; a < A; ++a) s += xo[(long long)a * inner];
        y[e] = s / A;
    }
}

// dx[o, a, i] = dy[o, i] / A. One thread per input element (grid-stride).
extern "C" __global__ void mean_pool_bwd(const float* __restrict__ dy, float* __restrict__ dx, long long outer,
                                         int A, long long inner) {
    const long long n = outer * A * inner;
    for (long long e = blockIdx.x * (long long)blockDim.x + threadIdx.x; e < n;
         e += (long long)gridDim.x * blockDim.x) {
        const long long o = e / (A * inner), i = e % inner;
        dx[e] = dy[o * inner + i] / A;
    }
}
