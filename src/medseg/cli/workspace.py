"""``medseg workspace create|info|history|status|verify``: the annotation store from a shell."""

from __future__ import annotations

import argparse
import functools
import json

_USAGE = """Examples:
  medseg workspace create data/cvc-clinicdb cvc-ws     index the dataset, import every mask
  medseg workspace create Dataset003_Liver liver-ws     volumes (nnU-Net 3-D, MSD, NIfTI folders, DICOM series)
  medseg workspace info cvc-ws                          counts by status and finding, changed sources
  medseg workspace history cvc-ws 42                    revisions and status changes of sample 42
  medseg workspace status cvc-ws 42 excluded --reason "motion blur"
  medseg workspace verify cvc-ws                        database and mask-file integrity"""


def _layouts() -> tuple[str, ...]:
    from medseg.datasets import layout_names

    return layout_names()


def add_parser(sub) -> None:
    from medseg.workspace.records import STATUSES

    p = sub.add_parser(
        "workspace",
        help="create and inspect review workspaces (labels, revisions, status)",
        description="A workspace is a folder beside a dataset holding its review state; the "
        "dataset itself is never written.",
        epilog=_USAGE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ws_sub = p.add_subparsers(dest="ws_command", required=True)
    c = ws_sub.add_parser("create", help="index a dataset and import its masks into a new workspace")
    c.add_argument("dataset", help="dataset folder")
    c.add_argument("workspace", help="new or empty folder, outside the dataset")
    c.add_argument("--layout", default=None, choices=_layouts(), help="force a layout instead of detecting it")
    c.add_argument(
        "--group-by",
        default="auto",
        choices=["auto", "stem", "frames", "similar"],
        help="auto (the layout's rule; integer names: video frame blocks by image similarity), stem, frames, "
        "similar (look-alike images whatever their names)",
    )
    c.add_argument("--author", default=None, help="recorded on the imported revisions (default: user name)")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.set_defaults(func=functools.partial(_run, _create))
    i = ws_sub.add_parser("info", help="summary: samples by status, revisions, findings, changed sources")
    i.add_argument("workspace")
    i.add_argument(
        "--verify",
        default="stat",
        choices=["stat", "hash", "none"],
        help="how to detect changed source files: stat (size/mtime, then hash), hash (all), none",
    )
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=functools.partial(_run, _info))
    h = ws_sub.add_parser("history", help="revisions and status changes of one sample")
    h.add_argument("workspace")
    h.add_argument("sample")
    h.add_argument("--json", action="store_true")
    h.set_defaults(func=functools.partial(_run, _history))
    s = ws_sub.add_parser("status", help="set a sample's review status")
    s.add_argument("workspace")
    s.add_argument("sample")
    s.add_argument("status", choices=STATUSES)
    s.add_argument("--reason", default=None, help="why (required for excluded)")
    s.add_argument("--author", default=None)
    s.set_defaults(func=functools.partial(_run, _status))
    v = ws_sub.add_parser("verify", help="check the database and every mask file; exit 2 on a problem")
    v.add_argument("workspace")
    v.add_argument("--gc", action="store_true", help="also remove mask files no revision uses")
    v.set_defaults(func=functools.partial(_run, _verify))


def _run(fn, args) -> int:
    # clean errors exit 2 and bugs 1: medseg.cli.main decides for every command
    return fn(args)


def _open(path, verify="none"):
    from medseg.workspace import Workspace

    return Workspace.open(path, verify=verify)


def _create(args) -> int:
    from medseg.cli.progress import run_job
    from medseg.workspace import Workspace

    ws = run_job(
        lambda token: Workspace.iter_create(
            args.workspace, args.dataset, layout=args.layout, group_by=args.group_by, author=args.author, cancel=token
        ),
        what="workspace",
        unit="sample",
        quiet=args.quiet,
    )
    with ws:
        _print_summary(ws.summary(), ws)
    return 0


def _info(args) -> int:
    with _open(args.workspace, args.verify) as ws:
        summary = ws.summary()
        if args.json:
            summary["source_change_list"] = [
                {"sample_id": c.sample_id, "path": str(c.path), "kind": c.kind} for c in ws.source_changes
            ]
            print(json.dumps(summary, indent=2))
        else:
            _print_summary(summary, ws)
    return 0


def _print_summary(s: dict, ws) -> None:
    print(
        f"{s['root']}: {s['n_samples']} samples of {s['dataset_root']} (layout {s['layout']}, "
        f"task {s['task']}, classes {', '.join(s['classes'])})"
    )
    if s.get("n_volumes"):
        print(
            f"volumes: {s['n_volumes']} ({s['n_slices']} slices at their current revisions, "
            f"{s['n_slice_files']} distinct slice files)"
        )
    print(_groups(ws))
    print("status: " + ", ".join(f"{k} {v}" for k, v in s["by_status"].items()))
    print(f"revisions: {s['n_revisions']} (" + ", ".join(f"{k} {v}" for k, v in s["revisions_by_origin"].items()) + ")")
    if s["by_check"]:
        print("findings: " + ", ".join(f"{k} {v}" for k, v in sorted(s["by_check"].items())))
    if s["score_methods"]:
        print("scores: " + ", ".join(s["score_methods"]))
    if ws.source_changes:
        print(f"{len(ws.source_changes)} source files changed or missing since import:")
        for c in ws.source_changes[:50]:
            print(f"  [{c.kind}] sample {c.sample_id}: {c.path}")
        if len(ws.source_changes) > 50:
            print(f"  ... and {len(ws.source_changes) - 50} more (use --json for all)")


def _groups(ws) -> str:
    from medseg.datasets import groups as grp
    from medseg.datasets import registry
    from medseg.errors import DatasetError

    records = ws.samples()
    ids = [r.id for r in records]
    try:
        layout_groups = registry.get_layout(ws.layout).auto_group is not None
    except DatasetError:  # a layout this version no longer knows: say what the names give
        layout_groups = True
    return grp.group_line([r.group for r in records], grp.inferred(ws.group_by, ids, layout_groups))


def _history(args) -> int:
    with _open(args.workspace) as ws:
        rec = ws.sample(args.sample)
        revisions, statuses = ws.revisions(rec.id), ws.status_history(rec.id)
        if args.json:
            print(
                json.dumps(
                    {
                        "sample": rec.id,
                        "status": rec.status,
                        "reason": rec.reason,
                        "head_revision": rec.head_revision,
                        "revisions": [r.__dict__ for r in revisions],
                        "statuses": [s.__dict__ for s in statuses],
                    },
                    indent=2,
                    default=str,
                )
            )
            return 0
        grid = f", volume {'x'.join(map(str, rec.geometry['shape']))}" if rec.geometry else ""
        print(
            f"sample {rec.id}: {rec.status}"
            + (f" ({rec.reason})" if rec.reason else "")
            + f", image {rec.image_path}{grid}"
        )
        for r in revisions:
            head = " (head)" if r.id == rec.head_revision else ""
            per = ", ".join(f"{ws.classmap.name_of(c)} {n}" for c, n in sorted(r.changed.items()))
            print(
                f"  revision {r.id}{head}: {r.origin} by {r.author} at {r.created}"
                + (
                    f", parent {r.parent_id}, {r.n_changed} px changed"
                    + (f" ({per})" if per else "")
                    + _slices(r.details.get("slices"))
                    if r.parent_id
                    else ""
                )
                + (f"\n    {r.note}" if r.note else "")
            )
        for s in statuses:
            print(f"  status {s.status} by {s.author} at {s.time}" + (f": {s.reason}" if s.reason else ""))
    return 0


def _slices(zs) -> str:
    """Where a volume revision changed: ", slices 12, 13, 40" (a long list shortened)."""
    if zs is None:
        return ""
    shown = ", ".join(map(str, zs[:12])) + (f", ... ({len(zs)} slices)" if len(zs) > 12 else "")
    return f", slices {shown}" if zs else ", no slice"


def _status(args) -> int:
    with _open(args.workspace) as ws:
        ws.set_status(args.sample, args.status, args.reason, author=args.author)
        rec = ws.sample(args.sample)
        print(f"sample {rec.id}: {rec.status}" + (f" ({rec.reason})" if rec.reason else ""))
    return 0


def _verify(args) -> int:
    with _open(args.workspace) as ws:
        problems = ws.check_integrity()
        for p in problems:
            print(f"problem: {p}")
        if args.gc:
            n, size = ws.gc()
            print(f"removed {n} unused mask files ({size:,} bytes)")
        print(f"{ws.root}: " + (f"{len(problems)} problems" if problems else "database and mask files are sound"))
    return 2 if problems else 0
