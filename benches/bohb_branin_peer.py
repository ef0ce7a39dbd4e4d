# Branin with hpbandster's BOHB proposal and fitting code (config_generators/bohb.py),
# reduced to min_budget == max_budget (one configuration per bracket): the peer of
# examples/branin.rs. Usage: python3 benches/bohb_branin_peer.py EVALUATIONS MIN_BANDWIDTH FIRST_SEED END_SEED
import sys, numpy as np, statsmodels.api as sm, scipy.stats as sps
def branin(u):
    x1 = -5 + 15*u[0]; x2 = 15*u[1]
    b = 5.1/(4*np.pi**2); c = 5/np.pi; t = 1/(8*np.pi)
    return (x2 - b*x1*x1 + c*x1 - 6)**2 + 10*(1-t)*np.cos(x1) + 10
def run(seed, n_eval, min_bw, top=15, num_samples=64, random_fraction=1/3, bw_factor=3):
    np.random.seed(seed)
    d = 2; min_points = d + 1
    configs, losses = [], []
    kde = None
    best = np.inf
    for it in range(n_eval):
        vec = None
        if kde is None or np.random.rand() < random_fraction:
            vec = np.random.rand(d)
        else:
            good, bad = kde
            l = good.pdf; g = bad.pdf
            mm = lambda x: max(1e-32, g(x))/max(l(x), 1e-32)
            bestv = np.inf; best_vector = None
            for i in range(num_samples):
                idx = np.random.randint(0, len(good.data))
                datum = good.data[idx]
                vector = []
                for m, bw in zip(datum, good.bw):
                    bw = max(bw, min_bw) * bw_factor
                    vector.append(sps.truncnorm.rvs(-m/bw, (1-m)/bw, loc=m, scale=bw))
                val = mm(vector)
                if val < bestv:
                    bestv = val; best_vector = vector
            vec = np.array(best_vector) if best_vector is not None else np.random.rand(d)
        loss = branin(vec)
        best = min(best, loss)
        configs.append(vec); losses.append(loss)
        if len(configs) <= min_points - 1: continue
        X = np.array(configs); y = np.array(losses)
        n_good = max(min_points, (top*X.shape[0])//100)
        n_bad = max(min_points, ((100-top)*X.shape[0])//100)
        idx = np.argsort(y)
        gd = X[idx[:n_good]]; bd = X[idx[n_good:n_good+n_bad]]
        if gd.shape[0] <= gd.shape[1] or bd.shape[0] <= bd.shape[1]: continue
        bk = sm.nonparametric.KDEMultivariate(data=bd, var_type='cc', bw='normal_reference')
        gk = sm.nonparametric.KDEMultivariate(data=gd, var_type='cc', bw='normal_reference')
        bk.bw = np.clip(bk.bw, min_bw, None); gk.bw = np.clip(gk.bw, min_bw, None)
        kde = (gk, bk)
    return best
if __name__ == '__main__':
    n_eval = int(sys.argv[1]); min_bw = float(sys.argv[2]); seeds = range(int(sys.argv[3]), int(sys.argv[4]))
    opt = 0.397887357729738
    res = []
    for s in seeds:
        b = run(s, n_eval, min_bw); res.append(b)
        print(f"seed {s}: best {b:.6f} {'ok' if b <= opt*1.01 else '> 1%'}", flush=True)
    print(f"n_eval {n_eval} min_bw {min_bw}: within 1%: {sum(b <= opt*1.01 for b in res)}/{len(res)}, median {np.median(res):.6f}")
