"""Re-score kept ``bench_rank.py --keep`` runs from their stored fit-all predictions: no training.

For choosing a scoring rule on the choosing side (frames 1-297, seeds 0-1) without training the model
again: every sample's label score is computed again from the probabilities the ranking stored, with the
code as it is now (``medseg.qc.label_scores``, ``medseg.qc.refit``), stored under the method, the
reliability calibration fitted again, and the queue evaluated against the run's planted errors.

    python benchmarks/bench_rank.py --frames choose --keep /tmp/choose      # once: trains, keeps run-0, run-1
    python benchmarks/rank_rescore.py /tmp/choose/run-0 /tmp/choose/run-1

The old rule on the same stored predictions: run it with ``PYTHONPATH`` set to a git worktree's ``src``
(it re-scores in place, so the last run's rule is the one stored: copy the run folders to compare two rules).
``--qc`` runs QC on the kept workspace first, for a changed or a new model-free signal.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from rank_protocol import evaluate, print_result


def rescore(ws, method: str = "fit-all") -> int:
    """Every stored prediction of ``method`` scored again against its sample's current label; the count."""
    from medseg.qc.label_scores import label_score
    from medseg.qc.prediction_store import load_prediction

    scores, details = {}, {}
    for sid, old in ws.score_details(method).items():
        stored = load_prediction(ws.root, method, sid)
        if stored is None:
            continue
        result = label_score(stored[0], ws.current_mask(sid), ws.classmap)
        field = old.get("score_field", "score")
        new = {**old, **result.to_dict()}
        scores[sid], details[sid] = float(getattr(result, field)), new
    ws.set_scores(method, scores, details)
    return len(scores)


def set_constant(item: str) -> None:
    """``MODULE.NAME=VALUE``: medseg.qc.MODULE's NAME set to the literal VALUE (an unknown name is an error)."""
    import ast
    import importlib

    target, _, value = item.partition("=")
    module, _, name = target.rpartition(".")
    mod = importlib.import_module(f"medseg.qc.{module}")
    if not module or not hasattr(mod, name):
        raise SystemExit(f"--set {item}: medseg.qc.{module} has no constant {name!r}")
    setattr(mod, name, ast.literal_eval(value))
    print(f"medseg.qc.{module}.{name} = {getattr(mod, name)!r}")


def run(folder: Path, method: str, qc: bool = False) -> dict:
    """The re-scored queue's results; with ``qc``, QC first and the model-free queue's under "model_free"."""
    from medseg.qc.outline_fit import METHOD as OUTLINE_METHOD
    from medseg.qc.reliability_model import calibrate_model
    from medseg.qc.run import run_qc
    from medseg.workspace import Workspace

    planted = json.loads((folder / "planted.json").read_text())
    with Workspace.open(folder / "ws") as ws:
        free = None
        if qc:  # the model-free signals and their calibration as the code measures them now
            for _ in run_qc(ws):
                pass
            # ranking by a model-free method is the queue QC alone gives (bench_rank.py's model-free line)
            free = evaluate(ws, OUTLINE_METHOD, planted)
        rescore(ws, method)
        calibrate_model(ws, method)
        out = evaluate(ws, method, planted)
        if free is not None:
            out["model_free"] = free
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="kept run folders (ws/ and planted.json)")
    ap.add_argument("--method", default="fit-all")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODULE.NAME=VALUE",
        help="a constant of medseg.qc.MODULE set for this run, e.g. refit.WEIGHT=2 (a Python literal)",
    )
    ap.add_argument(
        "--qc", action="store_true", help="run QC again first (a changed or new model-free signal; about a minute)"
    )
    ap.add_argument("--json", default=None, metavar="FILE")
    args = ap.parse_args(argv)
    for item in args.set:
        set_constant(item)
    results = []
    for folder in args.runs:
        r = run(folder, args.method, args.qc)
        if "model_free" in r:
            print_result(f"{folder}: model-free queue (QC only)", r["model_free"])
        print_result(str(folder), r)
        results.append(r)
    a, t = [r["auroc"] for r in results], [r["first_20pct"] for r in results]
    print(f"\nmean: queue AUROC {np.mean(a):.3f}, first 20 % {np.mean(t):.0%} ({' / '.join(f'{x:.0%}' for x in t)})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
