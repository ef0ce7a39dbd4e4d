// gemm.cu: tiled SGEMM, batched, either operand transposed, with the fused
// linear epilogue (bias over columns, then ReLU or GELU).
//   C[b] = alpha * op(A[b]) op(B[b]) + beta * C[b]   (+ bias[n], act)
// op(A) is M x K (A stored K x M when trans_a), op(B) is K x N (B stored N x K
// when trans_b); all row-major. stride_* = 0 shares an operand across the batch.
#include "common.cuh"

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256  // 16 x 16 threads, each owning a 4 x 4 micro-tile of C
#define GEMM_TM 4
#define GEMM_TN 4

#define EPILOGUE_NONE 0
#define EPILOGUE_RELU 1
#define EPILOGUE_GELU 2

// grid: (ceil(N/64), ceil(M/64), batch); block: 256.
// Each thread loads 4 elements of the A tile and 4 of the B tile per K step
// (consecutive threads read consecutive addresses whichever the layout), then
// accumulates its 4x4 outputs from shared memory in registers.
extern "C" __global__ void __launch_bounds__(GEMM_THREADS)
    sgemm_tiled(const float* __restrict__ A, const float* __restrict__ B, float* __restrict__ C,
                const float* __restrict__ bias, int M, int N, int K, int trans_a, int trans_b,
                long long stride_a, long long stride_b, long long stride_c, float alpha, float beta,
                int epilogue) {
    __shared__ float As[GEMM_BK][GEMM_BM + 4];  // As[k][m]
    __shared__ float Bs[GEMM_BK][GEMM_BN + 4];  // Bs[k][n]
    A += blockIdx.z * stride_a;
    B += blockIdx.z * stride_b;
    C += blockIdx.z * stride_c;
    const int tid = threadIdx.x;
    const int tx = tid % 16, ty = tid / 16;
    const int row0 = blockIdx.y * GEMM_BM, col0 = blockIdx.x * GEMM_BN;

    float acc[GEMM_TM][GEMM_TN];
    for (int i = 0; i < GEMM_TM; ++i)
        for (int j = 0; j < GEMM_TN; ++j) acc[i][j] = 0.0f;

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
        for (int k = 0; k < GEMM_BK; ++k) {
            float a[GEMM_TM], b[GEMM_TN];
            for (int i = 0; i < GEMM_TM; ++i) a[i] = As[k][ty * GEMM_TM + i];
            for (int j = 0; j < GEMM_TN; ++j) b[j] = Bs[k][tx * GEMM_TN + j];
            for (int i = 0; i < GEMM_TM; ++i)
                for (int j = 0; j < GEMM_TN; ++j) acc[i][j] += a[i] * b[j];
        }
        __syncthreads();
    }

    for (int i = 0; i < GEMM_TM; ++i) {
        const int r = row0 + ty * GEMM_TM + i;
        if (r >= M) continue;
        for (int j = 0; j < GEMM_TN; ++j) {
            const int c = col0 + tx * GEMM_TN + j;
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
