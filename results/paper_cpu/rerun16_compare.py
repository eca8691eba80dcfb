#!/usr/bin/env python3
"""Row-by-row comparison of two paper_cpu databases (rerun16.md's table):
    python3 results/paper_cpu/rerun16_compare.py results/paper_cpu/paper_cpu.sqlite results/paper_cpu/rerun16.sqlite
For each results table: the rows present in both (same run and key columns) and how many of them
hold exactly the same numbers. Read-only on both files."""
import sqlite3
import sys

CHECKS = [
    ("evals", "run_key, ckpt, split, length",
     "a.exact_match IS b.exact_match AND a.token_accuracy IS b.token_accuracy AND "
     "a.edit_distance IS b.edit_distance AND a.samples = b.samples AND a.status = b.status"),
    ("train_metrics", "run_key, step", "a.loss = b.loss AND a.grad_norm = b.grad_norm AND a.lr = b.lr"),
    ("attn_stats", "run_key, ckpt, split, length, layer, head",
     "a.entropy IS b.entropy AND a.support IS b.support AND a.max_weight IS b.max_weight AND "
     "a.relevant_mass IS b.relevant_mass"),
    ("selection_evals", "run_key, step", "a.exact_match = b.exact_match AND a.loss = b.loss"),
]

a_path, b_path = sys.argv[1], sys.argv[2]
db = sqlite3.connect(f"file:{a_path}?mode=ro", uri=True)
db.execute("ATTACH ? AS b", (f"file:{b_path}?mode=ro",))
print("| table | rows in both | equal |\n|---|---:|---:|")
for table, keys, same in CHECKS:
    both, equal = db.execute(
        f"SELECT count(*), coalesce(sum({same}), 0) FROM main.{table} a JOIN b.{table} b USING({keys})").fetchone()
    print(f"| {table} | {both:,} | {equal:,} |")
