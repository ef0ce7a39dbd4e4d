// elementwise.cu: one thread per element (grid-stride), for the tensor
// arithmetic (add, mul, scale); plus the bias add over the last dimension and
// its column-sum gradient.
#include "common.cuh"

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
