// permute.cu: axis reordering, one thread per output element (grid-stride).
#include "common.cuh"

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
