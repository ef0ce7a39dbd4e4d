// softmax.cu: softmax over the last dimension C of x [R, C].
#include "common.cuh"
// SOFTMAX_WARPS: src/cuda/shared_constants.rs

// grid: ceil(R/8); block: 256. The row's lanes find the max, then the sum of
// exp(x - max), then write exp(x - max) / sum.
extern "C" __global__ void softmax_fwd(const float* __restrict__ x, float* __restrict__ y, int R, int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32;
    if (row >= R) return;
    const float* xr = x + (long long)row * C;
    float mx = -CF_INF;
    for (int c = lane; c < C; c += 32) mx = fmaxf(mx, xr[c]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += expf(xr[c] - mx);
    const float inv = 1.0f / warp_sum(sum);
    float* yr = y + (long long)row * C;
    for (int c = lane; c < C; c += 32) yr[c] = expf(xr[c] - mx) * inv;
}

// dx = y * (dy - sum(dy * y)). grid: ceil(R/8); block: 256; one warp per row.
extern "C" __global__ void softmax_bwd(const float* __restrict__ y, const float* __restrict__ dy,
                                       float* __restrict__ dx, int R, int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * SOFTMAX_WARPS + threadIdx.x / 32;
    if (row >= R) return;
    const float* yr = y + (long long)row * C;
    const float* dyr = dy + (long long)row * C;
    float dot = 0.0f;
    for (int c = lane; c < C; c += 32) dot += yr[c] * dyr[c];
    dot = warp_sum(dot);
    float* dxr = dx + (long long)row * C;
    for (int c = lane; c < C; c += 32) dxr[c] = yr[c] * (dyr[c] - dot);
}
