// layer_norm.cu: layer normalisation over the last dimension C of x [R, C].
//   y = (x - mean) * rstd * w + b,  rstd = 1 / sqrt(var + eps)  (biased variance)
#include "common.cuh"
// LN_WARPS: src/cuda/shared_constants.rs

// grid: ceil(R/8); block: 256. One warp per row: lanes stride over the columns,
// two passes (mean, then the centred variance) for accuracy; saves mean and rstd
// for the backward pass.
extern "C" __global__ void layernorm_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                         const float* __restrict__ b, float* __restrict__ y,
                                         float* __restrict__ mean_out, float* __restrict__ rstd_out, int R, int C,
                                         float eps) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * LN_WARPS + threadIdx.x / 32;
    if (row >= R) return;  // the whole warp leaves together
    const float* xr = x + (long long)row * C;
    float sum = 0.0f;
    for (int c = lane; c < C; c += 32) sum += xr[c];
    const float mean = warp_sum(sum) / C;
    float sq = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float d = xr[c] - mean;
        sq += d * d;
    }
    const float rstd = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    float* yr = y + (long long)row * C;
    for (int c = lane; c < C; c += 32) yr[c] = (xr[c] - mean) * rstd * w[c] + b[c];
    if (lane == 0) {
        mean_out[row] = mean;
        rstd_out[row] = rstd;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w, xhat = (x - mean) * rstd.
// grid: ceil(R/8); block: 256; one warp per row.
extern "C" __global__ void layernorm_bwd_input(const float* __restrict__ dy, const float* __restrict__ x,
                                               const float* __restrict__ w, const float* __restrict__ mean,
                                               const float* __restrict__ rstd, float* __restrict__ dx, int R,
                                               int C) {
    const int lane = threadIdx.x % 32;
    const int row = blockIdx.x * LN_WARPS + threadIdx.x / 32;
    if (row >= R) return;
    const float* xr = x + (long long)row * C;
    const float* dyr = dy + (long long)row * C;
    const float mu = mean[row], rs = rstd[row];
    float g_sum = 0.0f, gx_sum = 0.0f;
    for (int c = lane; c < C; c += 32) {
        const float g = dyr[c] * w[c];
        g_sum += g;
        gx_sum += g * (xr[c] - mu) * rs;
    }
    const float g_mean = warp_sum(g_sum) / C;
    const float gx_mean = warp_sum(gx_sum) / C;
    float* dxr = dx + (long long)row * C;
    for (int c = lane; c < C; c += 32) {
        const float xhat = (xr[c] - mu) * rs;
        dxr[c] = rs * (dyr[c] * w[c] - g_mean - xhat * gx_mean);
    }
}

// dw[chunk, c] = sum_r dy[r, c] * xhat[r, c];  db[chunk, c] = sum_r dy[r, c],
// over the rows of chunk `blockIdx.y` (rows_per_chunk each); with more than one
// chunk, column_sum adds the chunks up afterwards.
// grid: (ceil(C/32), chunks); block: (32, 16). Thread (tx, ty) sums the rows
// ty, ty+16, ... of its chunk in column c = 32 * blockIdx.x + tx; the 16 partial
// sums of a column meet in shared memory and thread ty = 0 adds them up. Each
// output belongs to one block, so there are no atomics and no race.
extern "C" __global__ void layernorm_bwd_params(const float* __restrict__ dy, const float* __restrict__ x,
                                                const float* __restrict__ mean, const float* __restrict__ rstd,
                                                float* __restrict__ dw, float* __restrict__ db, int R, int C,
                                                int rows_per_chunk) {
    __shared__ float part_w[16][33];
    __shared__ float part_b[16][33];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int c = blockIdx.x * 32 + tx;
    const int r0 = blockIdx.y * rows_per_chunk, r1 = min(R, r0 + rows_per_chunk);
    float sw = 0.0f, sb = 0.0f;
    if (c < C) {
        for (int r = r0 + ty; r < r1; r += 16) {
            const float g = dy[(long long)r * C + c];
            sw += g * (x[(long long)r * C + c] - mean[r]) * rstd[r];
            sb += g;
        }
    }
    part_w[ty][tx] = sw;
    part_b[ty][tx] = sb;
    __syncthreads();  // every partial sum is written before row 0 reads them
    if (ty == 0 && c < C) {
        float tw = 0.0f, tb = 0.0f;
        for (int i = 0; i < 16; ++i) {
            tw += part_w[i][tx];
            tb += part_b[i][tx];
        }
        dw[(long long)blockIdx.y * C + c] = tw;
        db[(long long)blockIdx.y * C + c] = tb;
    }
}
