// matmul.cu: tiled SGEMM, batched, either operand transposed, with the fused
// linear epilogue (bias over columns, then ReLU or GELU).
//   C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b]   (+ bias[n], act)
// op(A) is M x K (A stored K x M when trans_a), op(B) is K x N (B stored N x K
// when trans_b); all row-major. stride_* = 0 shares an operand across the batch.
#include "common.cuh"

// GEMM_TILE, GEMM_THREADS and the EPILOGUE_* codes: src/cuda/shared_constants.rs
#define GEMM_BM GEMM_TILE
#define GEMM_BN GEMM_TILE
#define GEMM_BK 8
#define GEMM_HALF 64      // a micro-tile is 2 x 2 quads of 4 x 4, 64 rows/columns apart

// grid: (ceil(N/128), ceil(M/128), batch); block: 256.
// Per K step of 8, each thread loads 4 elements of the A tile and 4 of the B
// tile into shared memory (consecutive threads take consecutive addresses for
// either layout, zero outside the matrix), then accumulates its 8 x 8 outputs
// from registers: rows ty*4 + {0..3} and 64 + ty*4 + {0..3}, columns likewise
// with tx. Splitting the micro-tile in quads 64 apart keeps the shared-memory
// reads of a warp on distinct banks.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                const float* __restrict__ bias, int M, int N, int K, int trans_a, int trans_b,
                long long stride_a, long long stride_b, long long stride_c, float alpha, float beta,
                int epilogue) {
    __shared__ float As[GEMM_BK][GEMM_BM];  // As[k][m]
    __shared__ float Bs[GEMM_BK][GEMM_BN];  // Bs[k][n]
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * stride_c;
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * GEMM_BM, col0 = blockIdx.x * GEMM_BN;

    float acc[8][8];
    CF_UNROLL
    for (int i = 0; i < 8; ++i)
        CF_UNROLL
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        for (int r = 0; r < (GEMM_BM * GEMM_BK) / GEMM_THREADS; ++r) {
            const int e = tid + r * GEMM_THREADS;
            // A tile element (m, k); memory-contiguous index varies fastest.
            const int am = trans_a ? e % GEMM_BM : e / GEMM_BK;
            const int ak = trans_a ? e / GEMM_BM : e % GEMM_BK;
            const int gm = row0 + am, gk = k0 + ak;
            float a = 0.0f;
            if (gm < M && gk < K) a = trans_a ? A[(long long)gk * M + gm] : A[(long long)gm * K + gk];
            As[ak][am] = a;
            // B tile element (k, n).
            const int bn = trans_b ? e / GEMM_BK : e % GEMM_BN;
            const int bk = trans_b ? e % GEMM_BK : e / GEMM_BN;
            const int gn = col0 + bn, gkb = k0 + bk;
            float b = 0.0f;
            if (gn < N && gkb < K) b = trans_b ? B[(long long)gn * K + gkb] : B[(long long)gkb * N + gn];
            Bs[bk][bn] = b;
        }
        __syncthreads();
        CF_UNROLL
        for (int k = 0; k < GEMM_BK; ++k) {
            float a[8], b[8];
            CF_UNROLL
            for (int i = 0; i < 4; ++i) {
                a[i] = As[k][ty * 4 + i];
                a[4 + i] = As[k][GEMM_HALF + ty * 4 + i];
                b[i] = Bs[k][tx * 4 + i];
                b[4 + i] = Bs[k][GEMM_HALF + tx * 4 + i];
            }
            CF_UNROLL
            for (int i = 0; i < 8; ++i)
                CF_UNROLL
                for (int j = 0; j < 8; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }

    CF_UNROLL
    for (int i = 0; i < 8; ++i) {
        const int r = row0 + (i < 4 ? ty * 4 + i : GEMM_HALF + ty * 4 + i - 4);
        if (r >= M) continue;
        CF_UNROLL
        for (int j = 0; j < 8; ++j) {
            const int c = col0 + (j < 4 ? tx * 4 + j : GEMM_HALF + tx * 4 + j - 4);
            if (c >= N) continue;
            float v = alpha * acc[i][j];
            // beta == 0 must not read C: it may hold garbage (or NaN).
            if (beta != 0.0f) v += beta * C[(long long)r * N + c];
            if (bias) v += bias[c];
            if (epilogue == EPILOGUE_RELU) v = fmaxf(v, 0.0f);
            if (epilogue == EPILOGUE_GELU) v = gelu_forward(v);
            C[(long long)r * N + c] = v;
        }
    }
}
