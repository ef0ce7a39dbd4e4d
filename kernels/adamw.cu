// adamw.cu: the optimizer over all parameters at once (they live in one flat
// buffer, as do their gradients and moments), and the squared-norm reduction
// behind gradient clipping.
#include "common.cuh"

// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// p -= lr * (m / bc1 / (sqrt(v / bc2) + eps) + wd * p)   (decoupled weight decay)
// bc1 = 1 - b1^t and bc2 = 1 - b2^t come from the host. One thread per element.
extern "C" __global__ void adamw_step(float* __restrict__ p, const float* __restrict__ g, float* __restrict__ m,
                                      float* __restrict__ v, long long n, float lr, float beta1, float beta2,
                                      float eps, float weight_decay, float bc1, float bc2) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x) {
        const float gi = g[i];
        const float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        const float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * ((mi / bc1) / (sqrtf(vi / bc2) + eps) + weight_decay * p[i]);
    }
}

// partial[blockIdx.x] = sum of x_i^2 (square = 1) or of x_i (square = 0) over
// the block's grid-stride share. Called over the gradients with many blocks,
// then with square = 0 over the partials with one block. block: 256.
extern "C" __global__ void sum_squares(const float* __restrict__ x, float* __restrict__ partial, long long n,
                                       int square) {
    __shared__ float scratch[32];
    float s = 0.0f;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)gridDim.x * blockDim.x)
        s += square ? x[i] * x[i] : x[i];
    s = block_sum(s, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
