// dropout.cu: inverted dropout with the Philox 4x32-10 stream shared with the
// CPU (src/rng.rs). For element i of the call with key `seed` and call offset c:
//   counter = [lo32(i/4), hi32(i/4), lo32(c), hi32(c)], key = [lo32(seed), hi32(seed)],
//   r = philox(counter, key)[i % 4];  keep iff r >= threshold.
// y = keep ? x * keep_scale : 0. The backward pass calls the same kernel on dy
// with the same seed and offset, which regenerates the same mask.
#include "common.cuh"

// grid-stride over groups of 4 elements; each thread draws one Philox block
// (4 words) and applies it to its 4 elements.
extern "C" __global__ void dropout_apply(const float* __restrict__ x, float* __restrict__ y, long long n,
                                         unsigned seed_lo, unsigned seed_hi, unsigned call_lo, unsigned call_hi,
                                         unsigned threshold, float keep_scale) {
    const long long groups = (n + 3) / 4;
    for (long long g = blockIdx.x * (long long)blockDim.x + threadIdx.x; g < groups;
         g += (long long)gridDim.x * blockDim.x) {
        const Philox4 r = philox4x32_10((unsigned)g, (unsigned)((unsigned long long)g >> 32), call_lo, call_hi,
                                        seed_lo, seed_hi);
        for (int j = 0; j < 4; ++j) {
            const long long i = 4 * g + j;
            if (i < n) y[i] = r.v[j] >= threshold ? x[i] * keep_scale : 0.0f;
        }
    }
}
