// attention.cu: fused scaled-dot-product attention per (batch, head).
//   out_i = sum_j softmax_j(q_i . k_j * scale) v_j,   scale = 1/sqrt(D)
// q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv], out [B, H, Tq, Dv];
// key_mask [B, Tk] (1 = attend) or null. A query whose keys are all masked
// gets out = 0 and lse = +inf (so every P_ij of the backward pass is 0).
// lse [B, H, Tq] = log-sum-exp of the row's scores, saved for the backward.
#include "common.cuh"
// ATT_WARPS, ATT_MAX_SMEM_TK, ATT_MAX_DIM: src/cuda/shared_constants.rs

// Computes q_i . k_j * scale, or -inf for a masked key.
__device__ __forceinline__ float attention_score(const float* qi, const float* kj, int D, float scale,
                                                 const unsigned char* mask, int j) {
    if (mask && !mask[j]) return -CF_INF;
    float s = 0.0f;
    for (int d = 0; d < D; ++d) s += qi[d] * kj[d];
    return s * scale;
}

// grid: (B*H, ceil(Tq/4)); block: 128; dynamic shared memory: 4 * Tk floats.
// One warp per query row i. Its lanes compute the scores s_ij (keys strided
// over lanes) into the warp's row of shared memory, reduce max and sum, turn
// the row into probabilities, then each lane accumulates output dims d, d+32, ...
extern "C" __global__ void attention_fwd_smem(const float* __restrict__ q, const float* __restrict__ k,
                                              const float* __restrict__ v, const unsigned char* __restrict__ key_mask,
                                              float* __restrict__ out, float* __restrict__ lse, int H, int Tq, int Tk,
                                              int D, int Dv, float scale) {
    DYNAMIC_SHARED(float, smem);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int bh = blockIdx.x, b = bh / H;
    const int i = blockIdx.y * ATT_WARPS + warp;
    if (i >= Tq) return;  // whole warp
    float* p = smem + warp * Tk;
    const float* qi = q + ((long long)bh * Tq + i) * D;
    const float* kb = k + (long long)bh * Tk * D;
    const float* vb = v + (long long)bh * Tk * Dv;
    const unsigned char* mask = key_mask ? key_mask + (long long)b * Tk : 0;

    float mx = -CF_INF;
    for (int j = lane; j < Tk; j += 32) {
        const float s = attention_score(qi, kb + (long long)j * D, D, scale, mask, j);
        p[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int j = lane; j < Tk; j += 32) {
        const float e = mx == -CF_INF ? 0.0f : expf(p[j] - mx);
        p[j] = e;
        sum += e;
    }
    sum = warp_sum(sum);
    __syncwarp();  // lanes now read probabilities other lanes wrote
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    float* oi = out + ((long long)bh * Tq + i) * Dv;
    for (int d = lane; d < Dv; d += 32) {
        float acc = 0.0f;
        for (int j = 0; j < Tk; ++j) acc += p[j] * vb[(long long)j * Dv + d];
        oi[d] = acc * inv;
    }
    if (lane == 0) lse[(long long)bh * Tq + i] = sum > 0.0f ? mx + logf(sum) : CF_INF;
}

// Online softmax for any Tk (Dv <= 64): one warp per query row walks the keys
// 32 at a time (one key per lane), keeps the running max m and sum l, rescales
// its accumulators when m grows, and adds p_j v_j with p_j broadcast by shuffle;
// lane owns output dims lane and lane + 32.
// grid: (B*H, ceil(Tq/4)); block: 128.
extern "C" __global__ void attention_fwd_online(const float* __restrict__ q, const float* __restrict__ k,
                                                const float* __restrict__ v,
                                                const unsigned char* __restrict__ key_mask, float* __restrict__ out,
                                                float* __restrict__ lse, int H, int Tq, int Tk, int D, int Dv,
                                                float scale) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int bh = blockIdx.x, b = bh / H;
    const int i = blockIdx.y * ATT_WARPS + warp;
    if (i >= Tq) return;
    const float* qi = q + ((long long)bh * Tq + i) * D;
    const float* kb = k + (long long)bh * Tk * D;
    const float* vb = v + (long long)bh * Tk * Dv;
    const unsigned char* mask = key_mask ? key_mask + (long long)b * Tk : 0;

    float m = -CF_INF, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
    for (int j0 = 0; j0 < Tk; j0 += 32) {
        const int j = j0 + lane;
        const float s = j < Tk ? attention_score(qi, kb + (long long)j * D, D, scale, mask, j) : -CF_INF;
        const float m_new = fmaxf(m, warp_max(s));
        if (m_new == -CF_INF) continue;  // all keys so far masked (uniform over the warp)
        const float correction = expf(m - m_new);
        const float pj = s == -CF_INF ? 0.0f : expf(s - m_new);
        l = l * correction + warp_sum(pj);
        acc0 *= correction;
        acc1 *= correction;
        const int count = min(32, Tk - j0);
        for (int jj = 0; jj < count; ++jj) {
            const float pjj = __shfl_sync(FULL_MASK, pj, jj);
            const float* vj = vb + (long long)(j0 + jj) * Dv;
            if (lane < Dv) acc0 += pjj * vj[lane];
            if (lane + 32 < Dv) acc1 += pjj * vj[lane + 32];
        }
        m = m_new;
    }
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    float* oi = out + ((long long)bh * Tq + i) * Dv;
    if (lane < Dv) oi[lane] = acc0 * inv;
    if (lane + 32 < Dv) oi[lane + 32] = acc1 * inv;
    if (lane == 0) lse[(long long)bh * Tq + i] = l > 0.0f ? m + logf(l) : CF_INF;
}

// Backward, query side: delta_i = dO_i . O_i (saved for the key side), and
// dQ_i = scale * sum_j dS_ij k_j with P_ij = exp(s_ij - lse_i),
// dS_ij = P_ij (dO_i . v_j - delta_i). One warp per query row, keys 32 at a
// time (one per lane), dS_ij broadcast by shuffle; lane owns dims lane, lane+32.
// grid: (B*H, ceil(Tq/4)); block: 128. Needs D <= 64.
extern "C" __global__ void attention_bwd_query(const float* __restrict__ q, const float* __restrict__ k,
                                               const float* __restrict__ v,
                                               const unsigned char* __restrict__ key_mask,
                                               const float* __restrict__ out, const float* __restrict__ dout,
                                               const float* __restrict__ lse, float* __restrict__ delta,
                                               float* __restrict__ dq, int H, int Tq, int Tk, int D, int Dv,
                                               float scale) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int bh = blockIdx.x, b = bh / H;
    const int i = blockIdx.y * ATT_WARPS + warp;
    if (i >= Tq) return;
    const long long row = (long long)bh * Tq + i;
    const float* qi = q + row * D;
    const float* doi = dout + row * Dv;
    const float* kb = k + (long long)bh * Tk * D;
    const float* vb = v + (long long)bh * Tk * Dv;
    const unsigned char* mask = key_mask ? key_mask + (long long)b * Tk : 0;

    float dsum = 0.0f;
    for (int d = lane; d < Dv; d += 32) dsum += doi[d] * out[row * Dv + d];
    const float delta_i = warp_sum(dsum);
    if (lane == 0) delta[row] = delta_i;
    const float lse_i = lse[row];

    float acc0 = 0.0f, acc1 = 0.0f;
    for (int j0 = 0; j0 < Tk; j0 += 32) {
        const int j = j0 + lane;
        float ds = 0.0f;
        if (j < Tk) {
            const float s = attention_score(qi, kb + (long long)j * D, D, scale, mask, j);
            const float p = expf(s - lse_i);  // 0 for masked keys and empty rows
            float dp = 0.0f;
            for (int d = 0; d < Dv; ++d) dp += doi[d] * vb[(long long)j * Dv + d];
            ds = p * (dp - delta_i);
        }
        const int count = min(32, Tk - j0);
        for (int jj = 0; jj < count; ++jj) {
            const float dsj = __shfl_sync(FULL_MASK, ds, jj);
            const float* kj = kb + (long long)(j0 + jj) * D;
            if (lane < D) acc0 += dsj * kj[lane];
            if (lane + 32 < D) acc1 += dsj * kj[lane + 32];
        }
    }
    if (lane < D) dq[row * D + lane] = acc0 * scale;
    if (lane + 32 < D) dq[row * D + lane + 32] = acc1 * scale;
}

// Backward, key side: dV_j = sum_i P_ij dO_i and dK_j = scale * sum_i dS_ij q_i.
// One warp per key row j, queries 32 at a time (one per lane); each key row is
// owned by one warp, so no atomics. Runs after attention_bwd_query (needs delta).
// grid: (B*H, ceil(Tk/4)); block: 128. Needs D, Dv <= 64.
extern "C" __global__ void attention_bwd_key(const float* __restrict__ q, const float* __restrict__ k,
                                             const float* __restrict__ v, const unsigned char* __restrict__ key_mask,
                                             const float* __restrict__ dout, const float* __restrict__ lse,
                                             const float* __restrict__ delta, float* __restrict__ dk,
                                             float* __restrict__ dv, int H, int Tq, int Tk, int D, int Dv,
                                             float scale) {
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int bh = blockIdx.x, b = bh / H;
    const int j = blockIdx.y * ATT_WARPS + warp;
    if (j >= Tk) return;
    const long long krow = (long long)bh * Tk + j;
    const float* kj = k + krow * D;
    const float* vj = v + krow * Dv;
    const float* qb = q + (long long)bh * Tq * D;
    const float* dob = dout + (long long)bh * Tq * Dv;
    const bool masked = key_mask && !key_mask[(long long)b * Tk + j];

    float dk0 = 0.0f, dk1 = 0.0f, dv0 = 0.0f, dv1 = 0.0f;
    for (int i0 = 0; i0 < Tq && !masked; i0 += 32) {
        const int i = i0 + lane;
        float p = 0.0f, ds = 0.0f;
        if (i < Tq) {
            const long long row = (long long)bh * Tq + i;
            const float s = attention_score(qb + (long long)i * D, kj, D, scale, 0, 0);
            p = expf(s - lse[row]);
            float dp = 0.0f;
            for (int d = 0; d < Dv; ++d) dp += dob[(long long)i * Dv + d] * vj[d];
            ds = p * (dp - delta[row]);
        }
        const int count = min(32, Tq - i0);
        for (int ii = 0; ii < count; ++ii) {
            const float pi = __shfl_sync(FULL_MASK, p, ii);
            const float dsi = __shfl_sync(FULL_MASK, ds, ii);
            const float* q_row = qb + (long long)(i0 + ii) * D;
            const float* do_row = dob + (long long)(i0 + ii) * Dv;
            if (lane < D) dk0 += dsi * q_row[lane];
            if (lane + 32 < D) dk1 += dsi * q_row[lane + 32];
            if (lane < Dv) dv0 += pi * do_row[lane];
            if (lane + 32 < Dv) dv1 += pi * do_row[lane + 32];
        }
    }
    if (lane < D) dk[krow * D + lane] = dk0 * scale;
    if (lane + 32 < D) dk[krow * D + lane + 32] = dk1 * scale;
    if (lane < Dv) dv[krow * Dv + lane] = dv0;
    if (lane + 32 < Dv) dv[krow * Dv + lane + 32] = dv1;
}
