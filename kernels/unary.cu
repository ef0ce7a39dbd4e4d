// unary.cu: the activations and their gradients, one thread per element
// (grid-stride); `src/ops/unary/` launches them.
#include "common.cuh"

// y = max(x, 0)
extern "C" __global__ void relu_fwd(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = fmaxf(x[i], 0.0f);
}
// dx = dy where x > 0, else 0
extern "C" __global__ void relu_bwd(const float* __restrict__ x, const float* __restrict__ dy,
                                    float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}
// y = gelu(x), tanh form
extern "C" __global__ void gelu_fwd(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(i, n) y[i] = gelu_forward(x[i]);
}
// dx = dy * gelu'(x)
extern "C" __global__ void gelu_bwd(const float* __restrict__ x, const float* __restrict__ dy,
                                    float* __restrict__ dx, long long n) {
    GRID_STRIDE(i, n) dx[i] = dy[i] * gelu_derivative(x[i]);
}
