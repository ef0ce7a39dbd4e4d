"""The usual Python pipeline for a BigQuery instance_usage export, timed end to end:
pandas.read_json(lines=True) (NDJSON, plain or gzip) or pyarrow.parquet.read_table
(Parquet), then the same 26 channels and 12-window samples that
`convformer::data::load(.., Format::BigQuery, ..)` builds (see src/data/bigquery/mod.rs).

usage: python3 benches/bigquery_peer.py ndjson|parquet FILE
  -> one JSON line {seconds, cpu_seconds, rows, samples, peak_mib}
"""
import json
import resource
import sys
import time

import numpy as np

WINDOW = 12
MAX_STEP_US = 450_000_000


def samples(coll, inst, t, x):
    """Windows of WINDOW rows per gap-free run of each instance; target = next max memory."""
    order = np.lexsort((t, inst, coll))
    coll, inst, t, x = coll[order], inst[order], t[order], x[order]
    keep = np.ones(len(t), dtype=bool)
    keep[1:] = ~((coll[1:] == coll[:-1]) & (inst[1:] == inst[:-1]) & (t[1:] == t[:-1]))
    coll, inst, t, x = coll[keep], inst[keep], t[keep], x[keep]
    new_run = np.ones(len(t), dtype=bool)
    new_run[1:] = (coll[1:] != coll[:-1]) | (inst[1:] != inst[:-1]) | (t[1:] - t[:-1] > MAX_STEP_US)
    run_start = np.maximum.accumulate(np.where(new_run, np.arange(len(t)), 0))
    pos = np.arange(len(t)) - run_start
    target = x[:, 3]
    at = np.nonzero((pos >= WINDOW) & ~np.isnan(target))[0]
    windows = np.lib.stride_tricks.sliding_window_view(x, (WINDOW, x.shape[1]))[:, 0]
    inputs = np.ascontiguousarray(windows[at - WINDOW])
    return inputs, target[at].astype(np.float32)


def distribution(lists, n, used):
    out = np.full((len(lists), used), np.nan)
    for i, d in enumerate(lists):
        if isinstance(d, list) and len(d) == n:
            out[i] = [np.nan if v is None else v for v in d[:used]]
    return out


def from_pandas(path):
    import pandas as pd

    df = pd.read_json(path, lines=True, dtype=False)
    number = lambda s: pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    record = lambda col, key: number(df[col].str.get(key)) if col in df else np.full(len(df), np.nan)
    x = np.column_stack([
        record("average_usage", "cpus"),
        record("maximum_usage", "cpus"),
        record("average_usage", "memory"),
        record("maximum_usage", "memory"),
        number(df["assigned_memory"]),
        distribution(df["cpu_usage_distribution"], 11, 10),
        distribution(df["tail_cpu_usage_distribution"], 9, 9),
        record("resource_request", "memory"),
        record("resource_request", "cpus"),
    ]).astype(np.float32)
    ints = lambda c: pd.to_numeric(df[c]).to_numpy(dtype=np.int64)
    return len(df), samples(ints("collection_id"), ints("instance_index"), ints("start_time"), x)


def from_pyarrow(path):
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    used = ["start_time", "collection_id", "instance_index", "average_usage", "maximum_usage",
            "assigned_memory", "cpu_usage_distribution", "tail_cpu_usage_distribution",
            "resource_request"]
    table = pq.read_table(path, columns=used)
    column = lambda name: table.column(name).combine_chunks()
    floats = lambda a: a.to_numpy(zero_copy_only=False).astype(np.float64)

    def record(name):
        a = column(name)
        children = dict(zip([f.name for f in a.type], a.flatten()))
        return floats(children["cpus"]), floats(children["memory"])

    def dist(name, n, used_n):
        a = column(name)
        lens = pc.list_value_length(a).fill_null(0).to_numpy()
        values = floats(pc.list_flatten(a))
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]])
        out = np.full((len(a), used_n), np.nan)
        full = lens == n
        out[full] = values[starts[full][:, None] + np.arange(used_n)]
        return out

    avg_cpu, avg_mem = record("average_usage")
    max_cpu, max_mem = record("maximum_usage")
    req_cpu, req_mem = record("resource_request")
    x = np.column_stack([
        avg_cpu, max_cpu, avg_mem, max_mem, floats(column("assigned_memory")),
        dist("cpu_usage_distribution", 11, 10), dist("tail_cpu_usage_distribution", 9, 9),
        req_mem, req_cpu,
    ]).astype(np.float32)
    ints = lambda c: column(c).to_numpy(zero_copy_only=False).astype(np.int64)
    return table.num_rows, samples(ints("collection_id"), ints("instance_index"), ints("start_time"), x)


def main(kind, path):
    start, cpu_start = time.perf_counter(), time.process_time()
    rows, (inputs, targets) = (from_pandas if kind == "ndjson" else from_pyarrow)(path)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": rows,
                      "samples": int(len(targets)), "peak_mib": peak_mib}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
