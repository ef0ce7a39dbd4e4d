// conv1d.cu: 1-D convolution, stride 1, zero padding `pad` on the left.
//   y[b, co, t] = bias[co] + sum_{ci, k} w[co, ci, k] * x[b, ci, t + k - pad]
// x [B, Cin, L], w [Cout, Cin, K], y [B, Cout, Lout]; out-of-range x reads as 0.
#include "common.cuh"
// CONV_TILE, CONV_CI_CHUNK: src/cuda/shared_constants.rs

// grid: (ceil(Lout/128), Cout, B); block: 128; dynamic shared memory:
// CONV_CI_CHUNK * (128 + K - 1 + K) floats.
// The block stages a window of x and the weights of its output channel, chunk by
// chunk of input channels; each thread computes one output position t.
extern "C" __global__ void conv1d_fwd(const float* __restrict__ x, const float* __restrict__ w,
                                      const float* __restrict__ bias, float* __restrict__ y, int Cin, int L,
                                      int Cout, int K, int Lout, int pad) {
    DYNAMIC_SHARED(float, smem);
    const int window = CONV_TILE + K - 1;
    float* xs = smem;                          // [CONV_CI_CHUNK][window]
    float* ws = smem + CONV_CI_CHUNK * window;  // [CONV_CI_CHUNK][K]
    const int b = blockIdx.z, co = blockIdx.y;
    const int t0 = blockIdx.x * CONV_TILE;
    const int t = t0 + threadIdx.x;
    float acc = bias ? bias[co] : 0.0f;
    for (int ci0 = 0; ci0 < Cin; ci0 += CONV_CI_CHUNK) {
        const int chunk = min(CONV_CI_CHUNK, Cin - ci0);
        for (int e = threadIdx.x; e < chunk * window; e += blockDim.x) {
            const int ci = e / window, s = t0 - pad + e % window;
            xs[e] = (s >= 0 && s < L) ? x[((long long)b * Cin + ci0 + ci) * L + s] : 0.0f;
        }
        for (int e = threadIdx.x; e < chunk * K; e += blockDim.x)
            ws[e] = w[((long long)co * Cin + ci0) * K + e];
        __syncthreads();
        for (int ci = 0; ci < chunk; ++ci)
            for (int k = 0; k < K; ++k) acc += ws[ci * K + k] * xs[ci * window + threadIdx.x + k];
        __syncthreads();
    }
    if (t < Lout) y[((long long)b * Cout + co) * Lout + t] = acc;
}

// The first layer has one input channel: stage x's window and all weights once,
// and let each thread produce its position t for every output channel.
// grid: (ceil(Lout/128), B); block: 128; dynamic shared memory:
// (128 + K - 1) + Cout * K floats.
extern "C" __global__ void conv1d_fwd_cin1(const float* __restrict__ x, const float* __restrict__ w,
                                           const float* __restrict__ bias, float* __restrict__ y, int L, int Cout,
                                           int K, int Lout, int pad) {
    DYNAMIC_SHARED(float, smem);
    const int window = CONV_TILE + K - 1;
    float* xs = smem;
    float* ws = smem + window;
    const int b = blockIdx.y;
    const int t0 = blockIdx.x * CONV_TILE;
    const int t = t0 + threadIdx.x;
    for (int e = threadIdx.x; e < window; e += blockDim.x) {
        const int s = t0 - pad + e;
        xs[e] = (s >= 0 && s < L) ? x[(long long)b * L + s] : 0.0f;
    }
    for (int e = threadIdx.x; e < Cout * K; e += blockDim.x) ws[e] = w[e];
    __syncthreads();
    if (t >= Lout) return;
    for (int co = 0; co < Cout; ++co) {
        float acc = bias ? bias[co] : 0.0f;
        for (int k = 0; k < K; ++k) acc += ws[co * K + k] * xs[threadIdx.x + k];
        y[((long long)b * Cout + co) * Lout + t] = acc;
    }
}

// dx[b, ci, s] = sum_{co, k} dy[b, co, s + pad - k] * w[co, ci, k].
// grid: (ceil(L/256), Cin, B); block: 256; each thread owns one dx element.
extern "C" __global__ void conv1d_bwd_input(const float* __restrict__ dy, const float* __restrict__ w,
                                            float* __restrict__ dx, int Cin, int L, int Cout, int K, int Lout,
                                            int pad) {
    const int b = blockIdx.z, ci = blockIdx.y;
    const int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= L) return;
    float acc = 0.0f;
    for (int co = 0; co < Cout; ++co) {
        const float* dyrow = dy + ((long long)b * Cout + co) * Lout;
        const float* wrow = w + ((long long)co * Cin + ci) * K;
        for (int k = 0; k < K; ++k) {
            const int t = s + pad - k;
            if (t >= 0 && t < Lout) acc += dyrow[t] * wrow[k];
        }
    }
    dx[((long long)b * Cin + ci) * L + s] = acc;
}

// dw[co, ci, k] = sum_{b, t} dy[b, co, t] * x[b, ci, t + k - pad].
// grid: (K, Cin, Cout); block: 256. One block per weight: its threads stride
// over the (b, t) pairs and a block reduction writes the sum (no atomics, so
// the result does not depend on scheduling).
extern "C" __global__ void conv1d_bwd_weight(const float* __restrict__ dy, const float* __restrict__ x,
                                             float* __restrict__ dw, int B, int Cin, int L, int Cout, int K,
                                             int Lout, int pad) {
    __shared__ float scratch[32];
    const int k = blockIdx.x, ci = blockIdx.y, co = blockIdx.z;
    float acc = 0.0f;
    for (long long e = threadIdx.x; e < (long long)B * Lout; e += blockDim.x) {
        const int b = (int)(e / Lout), t = (int)(e % Lout);
        const int s = t + k - pad;
        if (s >= 0 && s < L) acc += dy[((long long)b * Cout + co) * Lout + t] * x[((long long)b * Cin + ci) * L + s];
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) dw[((long long)co * Cin + ci) * K + k] = acc;
}

// dbias[co] = sum_{b, t} dy[b, co, t]. grid: Cout; block: 256.
extern "C" __global__ void conv1d_bwd_bias(const float* __restrict__ dy, float* __restrict__ dbias, int B, int Cout,
                                           int Lout) {
    __shared__ float scratch[32];
    const int co = blockIdx.x;
    float acc = 0.0f;
    for (long long e = threadIdx.x; e < (long long)B * Lout; e += blockDim.x) {
        const int b = (int)(e / Lout), t = (int)(e % Lout);
        acc += dy[((long long)b * Cout + co) * Lout + t];
    }
    acc = block_sum(acc, scratch);
    if (threadIdx.x == 0) dbias[co] = acc;
}
