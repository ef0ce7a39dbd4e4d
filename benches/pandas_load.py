"""The usual Python pipeline for the Kaggle Borg extract, timed end to end:
pandas.read_csv + ast.literal_eval on the dict cells + split of the numpy-array
text, into the same 36-feature matrix and target that `convformer::data::load` builds.

usage: python3 benches/pandas_load.py FILE   -> prints one JSON line {seconds, cpu_seconds, rows, samples, features}
"""
import ast
import json
import sys
import time

import numpy as np
import pandas as pd


def dict_column(series, key):
    def get(cell):
        if not isinstance(cell, str) or not cell:
            return np.nan
        value = ast.literal_eval(cell).get(key)
        return np.nan if value is None else float(value)

    return series.map(get)


def array_column(series, length):
    def parse(cell):
        if not isinstance(cell, str) or cell.strip() in ("", "[]"):
            return np.full(length, np.nan)
        return np.array(cell.strip("[]").split(), dtype=np.float64)

    return np.stack(series.map(parse).to_numpy())


def main(path):
    start, cpu_start = time.perf_counter(), time.process_time()
    df = pd.read_csv(path)
    cols = [
        dict_column(df["average_usage"], "cpus"),
        dict_column(df["average_usage"], "memory"),
        dict_column(df["maximum_usage"], "cpus"),
        dict_column(df["random_sample_usage"], "cpus"),
        dict_column(df["resource_request"], "cpus"),
        dict_column(df["resource_request"], "memory"),
    ]
    for name in [
        "assigned_memory", "page_cache_memory", "cycles_per_instruction",
        "memory_accesses_per_instruction", "sample_rate", "priority",
        "scheduling_class", "collection_type", "instance_events_type",
    ]:
        cols.append(df[name].astype(np.float64))
    cols.append((df["end_time"] - df["start_time"]) * 1e-6)
    plain = np.column_stack([np.asarray(c, dtype=np.float64) for c in cols])
    features = np.hstack([
        plain,
        array_column(df["cpu_usage_distribution"], 11),
        array_column(df["tail_cpu_usage_distribution"], 9),
    ]).astype(np.float32)
    target = dict_column(df["maximum_usage"], "memory").to_numpy()
    keep = ~np.isnan(target)
    x, y = features[keep], target[keep].astype(np.float32)
    seconds = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "rows": len(df), "samples": int(len(y)), "features": x.shape[1]}))


if __name__ == "__main__":
    main(sys.argv[1])
