"""Peer for benches/bohb.rs: one model-based BOHB proposal the way hpbandster
0.7.4 makes it (statsmodels KDEMultivariate, normal-reference bandwidths,
scipy truncnorm candidates, l/g scored through KDEMultivariate.pdf), at 8+8
dimensions with 200 observations. Needs numpy, scipy, statsmodels.

    python3 benches/bohb_peer.py
"""
import time
import warnings

import numpy as np
import scipy.stats as sps
import statsmodels.api as sm

N_CAT, N_CONT, N_OBS = 8, 8, 200
TOP_N_PERCENT, NUM_SAMPLES, BW_FACTOR, MIN_BW = 15, 64, 3.0, 1e-3


def observations(rng):
    cat = rng.integers(0, 2, size=(N_OBS, N_CAT)).astype(float)
    cont = rng.random((N_OBS, N_CONT))
    draws = rng.random((N_OBS, N_CONT, 9)) < cont[:, :, None]  # budget 9
    loss = -(cat.sum(1) + draws.mean(2).sum(1))
    return np.hstack([cat, cont]), loss


def propose(configs, losses, rng):
    d = configs.shape[1]
    var_types = "u" * N_CAT + "c" * N_CONT
    levels = [2] * N_CAT + [0] * N_CONT
    min_points = d + 1
    n = len(losses)
    n_good = max(min_points, TOP_N_PERCENT * n // 100)
    n_bad = max(min_points, (100 - TOP_N_PERCENT) * n // 100)
    order = np.argsort(losses)
    good = sm.nonparametric.KDEMultivariate(configs[order[:n_good]], var_types, bw="normal_reference")
    bad = sm.nonparametric.KDEMultivariate(configs[order[n_good:n_good + n_bad]], var_types, bw="normal_reference")
    good.bw = np.clip(good.bw, MIN_BW, None)
    bad.bw = np.clip(bad.bw, MIN_BW, None)
    best, best_vector = np.inf, None
    for _ in range(NUM_SAMPLES):
        datum = good.data[rng.integers(0, len(good.data))]
        vector = []
        for m, bw, t in zip(datum, good.bw, levels):
            bw = max(bw, MIN_BW)
            if t == 0:
                bw *= BW_FACTOR
                vector.append(sps.truncnorm.rvs(-m / bw, (1 - m) / bw, loc=m, scale=bw, random_state=rng))
            elif rng.random() < 1 - bw:
                vector.append(int(m))
            else:
                vector.append(rng.integers(t))
        score = max(1e-32, bad.pdf(vector)) / max(good.pdf(vector), 1e-32)
        if score < best:
            best, best_vector = score, vector
    return best_vector


def main():
    warnings.simplefilter("ignore", FutureWarning)  # statsmodels and pandas deprecation noise
    rng = np.random.default_rng(1)
    configs, losses = observations(rng)
    propose(configs, losses, rng)  # warm-up
    times = []
    for _ in range(30):
        start = time.perf_counter()
        propose(configs, losses, rng)
        times.append(time.perf_counter() - start)
    times.sort()
    print(f"hpbandster-style proposal, 8+8 dims, {N_OBS} obs: median {times[len(times) // 2] * 1e3:.2f} ms, "
          f"min {times[0] * 1e3:.2f} ms over {len(times)} runs")


if __name__ == "__main__":
    main()
