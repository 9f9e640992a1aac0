"""What the Dataset and Review widgets say about a workspace, a sample and its revisions, in words."""

from __future__ import annotations

from html import escape
from typing import Any

from medseg.workspace.records import STATUSES as STATUS_ORDER


def summary_html(ws: Any) -> str:
    """Counts by review status and by QC finding (rich text)."""
    s = ws.summary()
    by_status = ", ".join(f"{s['by_status'].get(k, 0)} {k}" for k in STATUS_ORDER)
    head = (
        f"<b>{s['n_samples']} samples</b> ({escape(s['layout'])}, {escape(s['task'])}: "
        f"{escape(', '.join(s['classes']))})"
    )
    lines = [head, f"Status: {by_status}"]
    checks = s.get("by_check") or {}
    if checks:
        info = s.get("info_by_check") or {}
        # the checks that call labels wrong first, however many info findings another check lists
        top = sorted(checks.items(), key=lambda kv: (-(kv[1] - info.get(kv[0], 0)), -kv[1], kv[0]))
        lines.append("Findings: " + ", ".join(_check_count(check, n, info.get(check, 0)) for check, n in top))
    else:
        lines.append("Findings: none stored (run QC)")
    changes = s.get("source_changes") or {}
    if changes:
        lines.append("Source files: " + ", ".join(f"{n} {k}" for k, n in changes.items()) + " since import")
    return "<br>".join(lines)


def _check_count(check: str, n: int, info: int) -> str:
    """E.g. "12 object count (3 info)": info findings say something about a label without calling it wrong (e.g. an
    object count shared with a neighbouring frame of the same scene), so they are told apart from the rest."""
    text = f"{n} {escape(check.replace('_', ' '))}"
    if info:
        text += " (info)" if info == n else f" ({info} info)"
    return text


def groups_line(ws: Any) -> str:
    """How the workspace's samples were grouped (the groups folds and neighbour checks follow), as ``medseg
    workspace info`` says it: e.g. "groups: 31 inferred from image similarity (sequences of look-alike frames);
    sizes 5-29, median 21"."""
    from medseg.datasets import groups as grp
    from medseg.datasets import registry
    from medseg.errors import DatasetError

    sizes = ws.group_sizes()  # counted by the workspace: no record per sample (100,000 take a second)
    try:
        layout_groups = registry.get_layout(ws.layout).auto_group is not None
    except DatasetError:  # a layout this version no longer knows: its groups came from what the names give
        layout_groups = True
    # the ids only where they decide it (digits-only names grouped "auto"): 100,000 of them take a second
    ids = ws.sample_ids() if ws.group_by == "auto" and not layout_groups else []
    return grp.group_line(sizes, grp.inferred(ws.group_by, ids, layout_groups))  # a Counter of the sizes: them


def problem_lines(ws: Any) -> list[str]:
    """Indexing problems and changed or vanished source files, one line each."""
    lines = [
        f"{f.check.replace('_', ' ')}: {f.message}" + (f" ({f.path})" if f.path else "")
        for f in ws.findings(source="index")
    ]
    lines += [f"source {ch.kind}: {ch.path} (sample {ch.sample_id})" for ch in ws.source_changes]
    return lines


def item_line(item: Any, k: int) -> str:
    """Row ``k`` (1-based) of the queue list: its place, the sample, its status and the priority that orders
    the list (ascending: the lowest, most likely wrong, first)."""
    return f"{k}. {item.sample_id} · {item.status} · {item.priority:.2f}"


def item_signals(item: Any) -> tuple[str, ...]:
    """Why the sample stands where it does, as short plain phrases, most telling first (the queue's
    ``signals``; its one-line ``reason`` where an item carries none)."""
    signals = tuple(getattr(item, "signals", ()) or ())
    return signals or ((item.reason,) if item.reason else ())


def item_tip(item: Any) -> str:
    """A queue row's tooltip: its priority and the reasons for it."""
    return f"priority {item.priority:.2f}: " + "; ".join(item_signals(item))


def place_text(place: tuple[int, int] | None, filtered: bool = False) -> str:
    """ "3 of 24 in the queue" for ``place`` (1-based position, queue length); None: not in the queue shown."""
    if place is None:
        return "not in the queue shown (its filters leave it out)" if filtered else "not in the queue yet"
    return f"{place[0]} of {place[1]} in the queue"


def item_html(item: Any, record: Any, place: tuple[int, int] | None = None, filtered: bool = False) -> str:
    """The current sample's status, score, place in the queue and why it is there (rich text)."""
    status = escape(record.status) + (f" ({escape(record.reason)})" if record.reason else "")
    score = "not scored" if item is None or item.score is None else f"{item.score:.2f} ({escape(item.method or '')})"
    lines = [
        f"<b>{escape(record.id)}</b> · group {escape(str(record.group))}",
        f"Status: {status}",
        f"Label quality: {score}",
    ]
    if item is not None:
        lines.append(f"Place: {escape(place_text(place, filtered))} · priority {item.priority:.2f}")
        lines.append("Why here:")
        lines += [f"• {escape(s)}" for s in item_signals(item)]
        if item.findings:
            lines.append("QC findings:")
        for f in item.findings:
            fix = f" — auto-fix: {f.fix.replace('_', ' ')}" if f.fix else ""
            lines.append(f"• <i>{escape(f.severity)}</i> {escape(f.message)}{escape(fix)}")
    return "<br>".join(lines)


def revision_line(rev: Any) -> str:
    """One row of the history list: id, origin, time, author, pixels changed, note."""
    when = str(rev.created)[:19].replace("T", " ")
    slices = (rev.details or {}).get("slices")
    if rev.parent_id is None:
        changed = "first revision"
    elif slices is not None:  # a volume's revision names the slices it changed
        shown = ", ".join(map(str, slices[:6])) + (", ..." if len(slices) > 6 else "")
        changed = f"{len(slices)} slice{'s' if len(slices) != 1 else ''} changed ({shown})"
    else:
        changed = f"{rev.n_changed:,} px changed"
    note = f" — {rev.note}" if rev.note else ""
    return f"#{rev.id} {rev.origin} · {when} · {rev.author} · {changed}{note}"
