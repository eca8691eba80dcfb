"""Cross-check lengthbench's logits against the independent PyTorch model of the spec.

usage: torch_crosscheck.py --lengthbench BIN [--lengths 8,32] [--count 2] [--random 2]
                           [--tol 1e-4] [--perturb NAME=DELTA] [--torch-attention KEY=VALUE]...
                           [--json] CHECKPOINT_DIR ...

For each checkpoint directory (written by `lengthbench train --out DIR`): token sequences from
`lengthbench gen` of the checkpoint's task (--count samples at each of --lengths, test split) plus
--random sequences of uniform ids over the whole input vocabulary (special ids included), fed to
`lengthbench logits --engine train` (Transformer::forward), `--engine infer` (KV-cache prefill)
and `--engine decode` (one-token KV-cache steps) and to lengthbench_checkpoint.Model in float64
(decode=True for the decode engine: topk's div-2 rule counts i + 1 keys there, T otherwise).
Reports, per checkpoint and engine, the largest absolute logit difference and that difference
relative to the logit scale max(1, max |logit|).

Exit status: 0 when every relative difference is <= --tol, 1 when one exceeds it, 2 for bad input
(a directory that is not a checkpoint, a lengthbench that fails). Both options below change the
torch side only, so the check must then fail, which shows that it can
(tools/torch_crosscheck_test.sh does this): --perturb NAME=DELTA adds DELTA to the first element
of tensor NAME; --torch-attention KEY=VALUE sets a normalizer parameter of the torch model (e.g.
bias=alibi, poly=descending, rule=div-2-row: lengthbench's behaviours before issue 11).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lengthbench_checkpoint import CheckpointError, Model, load  # noqa: E402


class UsageError(Exception):
    """Bad input; one line, exit status 2."""


def run_lengthbench(binary, args):
    try:
        r = subprocess.run([binary] + args, capture_output=True, text=True, check=False)
    except OSError as e:
        raise UsageError(f"cannot run lengthbench '{binary}': {e.strerror}") from None
    if r.returncode != 0:
        raise UsageError(f"'{binary} {' '.join(args[:3])} ...' exited {r.returncode}: "
                         f"{r.stderr.strip().splitlines()[-1] if r.stderr.strip() else ''}")
    return r.stdout


def sequences(binary, cfg, lengths, count, n_random, seed):
    """Token sequences: `lengthbench gen` inputs of the checkpoint's task, then random ones."""
    train = cfg.get("train", {})
    task = train.get("task", "copy")
    params = []
    for k, v in (train.get("task_params") or {}).items():
        params += ["--param", f"{k}={v}"]
    seqs = []
    for L in lengths:
        out = run_lengthbench(binary, ["gen", task, "--length", str(L), "--count", str(count),
                                       "--format", "json"] + params)
        seqs += [json.loads(line)["input"] for line in out.splitlines() if line.strip()]
    rng = np.random.default_rng(seed)
    vocab = cfg["model"]["vocab_size"]
    for r in range(n_random):
        T = int(lengths[r % len(lengths)]) + 2
        seqs.append(rng.integers(0, vocab, size=T).tolist())
    return seqs


def check_checkpoint(args, directory):
    """{label, engines: {train: {...}, infer: {...}}, ok} for one checkpoint."""
    try:
        cfg, sd = load(directory)
    except CheckpointError as e:
        raise UsageError(str(e)) from None
    if args.perturb:
        name, delta = args.perturb
        if name not in sd:
            raise UsageError(f"--perturb: no tensor '{name}' in '{directory}'; "
                             f"accepted: {', '.join(sd)}")
        sd[name] = sd[name].clone()
        sd[name].view(-1)[0] += delta
    if args.torch_attention:
        m = cfg["model"]
        att = m["attention"] if isinstance(m["attention"], dict) else {"name": m["attention"]}
        m["attention"] = {**att, **args.torch_attention}
    try:
        model = Model(cfg, sd)
    except ValueError as e:
        raise UsageError(f"{directory}: {e}") from None
    m = cfg["model"]
    att = m["attention"] if isinstance(m["attention"], dict) else {"name": m["attention"]}
    # The issue-11 parameters, where the config has them: k, rule (topk), bias, poly.
    shown = ",".join(f"{k}={att[k]}" for k in ("k", "rule", "bias", "poly") if k in att)
    label = f"{att['name']}{'(' + shown + ')' if shown else ''}/{m['position']}"
    seqs = sequences(args.lengthbench, cfg, args.lengths, args.count, args.random, args.seed)
    result = {"checkpoint": directory, "label": label, "sequences": len(seqs), "engines": {}}
    ok = True
    refs = {}
    for engine in ("train", "infer", "decode"):
        max_abs, max_rel, scale = 0.0, 0.0, 0.0
        for n, ids in enumerate(seqs):
            out = run_lengthbench(args.lengthbench, ["logits", "--checkpoint", directory,
                                                     "--tokens", " ".join(map(str, ids)),
                                                     "--engine", engine])
            ours = torch.tensor(json.loads(out)["logits"], dtype=torch.float64)
            decode = engine == "decode"
            if (n, decode) not in refs:
                refs[(n, decode)] = model(torch.tensor(ids), decode=decode)
            ref = refs[(n, decode)]
            if ours.shape != ref.shape:
                raise UsageError(f"{directory}: engine {engine} gave logits {tuple(ours.shape)}, "
                                 f"the torch model {tuple(ref.shape)}")
            d = (ours - ref).abs().max().item()
            s = max(1.0, ref.abs().max().item())
            max_abs, scale, max_rel = max(max_abs, d), max(scale, s), max(max_rel, d / s)
        passed = max_rel <= args.tol
        ok = ok and passed
        result["engines"][engine] = {"max_abs_diff": max_abs, "max_rel_diff": max_rel,
                                     "logit_scale": scale, "ok": passed}
    result["zero_weight_fraction"] = model.zero_weight_fraction()
    result["ok"] = ok
    return result


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT_DIR")
    p.add_argument("--lengthbench", required=True, help="the lengthbench binary")
    p.add_argument("--lengths", default="8,32", help="task lengths for `gen` (comma-separated)")
    p.add_argument("--count", type=int, default=2, help="gen samples per length")
    p.add_argument("--random", type=int, default=2, help="random-id sequences per checkpoint")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sequences")
    p.add_argument("--tol", type=float, default=1e-4,
                   help="largest accepted |Δlogit| / max(1, max |logit|)")
    p.add_argument("--perturb", default=None, metavar="NAME=DELTA",
                   help="add DELTA to element 0 of tensor NAME in the torch model only")
    p.add_argument("--torch-attention", action="append", default=[], metavar="KEY=VALUE",
                   help="set a normalizer parameter of the torch model only (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON object per checkpoint")
    args = p.parse_args(argv)
    try:
        args.lengths = [int(x) for x in args.lengths.split(",")]
        if not args.lengths or min(args.lengths) < 1:
            raise ValueError
    except ValueError:
        raise UsageError(f"--lengths '{args.lengths}' is not a list of positive integers, "
                         "e.g. 8,32") from None
    if args.perturb is not None:
        name, sep, delta = args.perturb.partition("=")
        try:
            args.perturb = (name, float(delta))
        except ValueError:
            raise UsageError(f"--perturb '{args.perturb}' is not NAME=DELTA with DELTA a number") \
                from None
        if not sep or not name:
            raise UsageError(f"--perturb '{args.perturb}' is not NAME=DELTA")
    overrides = {}
    for item in args.torch_attention:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise UsageError(f"--torch-attention '{item}' is not KEY=VALUE, e.g. poly=descending")
        overrides[key] = value
    args.torch_attention = overrides
    return args


def main(argv):
    try:
        args = parse_args(argv)
        all_ok = True
        for d in args.checkpoints:
            r = check_checkpoint(args, d)
            all_ok = all_ok and r["ok"]
            if args.json:
                print(json.dumps(r), flush=True)
                continue
            cells = "  ".join(f"{e}: max|Δ| {v['max_abs_diff']:.3e} (rel {v['max_rel_diff']:.3e})"
                              for e, v in r["engines"].items())
            print(f"{'ok  ' if r['ok'] else 'FAIL'} {r['label']:<44} {cells}  "
                  f"scale {r['engines']['train']['logit_scale']:.2f}  "
                  f"zeros {100 * r['zero_weight_fraction']:.0f}%  {r['sequences']} seqs  {d}",
                  flush=True)
        return 0 if all_ok else 1
    except UsageError as e:
        print(f"torch_crosscheck: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
