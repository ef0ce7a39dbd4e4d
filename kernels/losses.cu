// losses.cu: the four regression losses, mean over n elements.
//   kind 0 MSE (p - t)^2     kind 1 MAE |p - t|
//   kind 2 Huber(delta): 0.5 d^2 if |d| <= delta, else delta (|d| - 0.5 delta)
//   kind 3 pinball(q) with e = t - p: max(q e, (q - 1) e)
// `param` is delta or q.
#include "common.cuh"
// the LOSS_* codes: src/cuda/shared_constants.rs

__device__ __forceinline__ float loss_value(int kind, float param, float p, float t) {
    const float d = p - t;
    if (kind == LOSS_MSE) return d * d;
    if (kind == LOSS_MAE) return fabsf(d);
    if (kind == LOSS_HUBER) return fabsf(d) <= param ? 0.5f * d * d : param * (fabsf(d) - 0.5f * param);
    const float e = t - p;
    return fmaxf(param * e, (param - 1.0f) * e);
}

// d loss_value / d p. At the kinks (d = 0 for MAE, e = 0 for pinball) the
// subgradient 0 is used for MAE and (1 - q) for pinball (as the CPU does).
__device__ __forceinline__ float loss_grad(int kind, float param, float p, float t) {
    const float d = p - t;
    if (kind == LOSS_MSE) return 2.0f * d;
    if (kind == LOSS_MAE) return d > 0.0f ? 1.0f : (d < 0.0f ? -1.0f : 0.0f);
    if (kind == LOSS_HUBER) return fminf(fmaxf(d, -param), param);
    return t - p > 0.0f ? -param : 1.0f - param;
}

// out[0] = mean_i loss(pred_i, target_i). grid: 1; block: 256. The block
// strides over the elements and reduces in a fixed order (deterministic).
extern "C" __global__ void loss_fwd(const float* __restrict__ pred, const float* __restrict__ target,
                                    float* __restrict__ out, long long n, int kind, float param) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += loss_value(kind, param, pred[i], target[i]);
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) out[0] = s / n;
}

// dpred_i = dloss[0] / n * loss'(pred_i, target_i). One thread per element.
extern "C" __global__ void loss_bwd(const float* __restrict__ pred, const float* __restrict__ target,
                                    const float* __restrict__ dloss, float* __restrict__ dpred, long long n, int kind,
                                    float param) {
    const float g = dloss[0] / n;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        dpred[i] = g * loss_grad(kind, param, pred[i], target[i]);
}
