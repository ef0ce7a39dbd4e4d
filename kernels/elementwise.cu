// elementwise.cu: one thread per element (grid-stride), for the pointwise ops
// and their gradients; plus the bias add over the last dimension and its
// column-sum gradient.
#include "common.cuh"

#define GRID_STRIDE(i, n) \
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

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
// y = a + b (the residual add; also accumulates gradients when y aliases a)
extern "C" __global__ void add(const float* a, const float* b, float* y, long long n) {
    GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
// y = a * b
extern "C" __global__ void mul(const float* a, const float* b, float* y, long long n) {
    GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}
// y = s * x (in place allowed)
extern "C" __global__ void scale(const float* x, float* y, float s, long long n) {
    GRID_STRIDE(i, n) y[i] = s * x[i];
}
// y[r, c] = x[r, c] + bias[c] for x [rows, C]
extern "C" __global__ void add_bias(const float* x, const float* __restrict__ bias, float* y, long long n, int C) {
    GRID_STRIDE(i, n) y[i] = x[i] + bias[i % C];
}
// out[chunk, c] = sum of x[r, c] over the rows r of chunk `blockIdx.y`
// (rows_per_chunk rows each), for x [R, C]: the gradient of add_bias and of a
// linear bias, and the second pass of every column reduction (one chunk).
// grid: (ceil(C/32), chunks); block: (32, 16). Thread (tx, ty) sums rows ty,
// ty+16, ... of its chunk in column c = 32 * blockIdx.x + tx; the 16 partial
// sums meet in shared memory and thread ty = 0 adds them. Each output has one
// owner: no atomics, and the order of additions is fixed.
extern "C" __global__ void column_sum(const float* __restrict__ x, float* __restrict__ out, int R, int C,
                                      int rows_per_chunk) {
    __shared__ float part[16][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    const int r0 = blockIdx.y * rows_per_chunk, r1 = min(R, r0 + rows_per_chunk);
    float s = 0.0f;
    if (c < C)
        for (int r = r0 + ty; r < r1; r += 16) s += x[(long long)r * C + c];
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && c < C) {
        float t = 0.0f;
        for (int i = 0; i < 16; ++i) t += part[i][tx];
        out[(long long)blockIdx.y * C + c] = t;
    }
}
// y = x with its axes reordered (up to 4; lower ranks lead with size-1 axes).
// Thread i splits its output index into coordinates over the output dims
// (d1..d3 innermost; the outermost takes the rest) and reads x at those
// coordinates times the input strides of the same axes (s0..s3).
extern "C" __global__ void permute4(const float* __restrict__ x, float* __restrict__ y, long long n, int d1,
                                    int d2, int d3, long long s0, long long s1, long long s2, long long s3) {
    GRID_STRIDE(i, n) {
        long long r = i;
        const long long c3 = r % d3;
        r /= d3;
        const long long c2 = r % d2;
        r /= d2;
        const long long c1 = r % d1;
        r /= d1;
        y[i] = x[r * s0 + c1 * s1 + c2 * s2 + c3 * s3];
    }
}
