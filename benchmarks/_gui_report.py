"""The tables ``bench_gui_responsiveness.py`` prints: gaps per phase, what each move cost, issue 19's targets."""

from __future__ import annotations

import statistics
from collections import Counter

# Each timed move's row: (to drawn, that request's forward, GUI-thread forward, show, job, repaints, in them)
MoveRow = tuple[float, float, float, float, float, int, float]


def print_gaps(rows: list[dict]) -> None:
    """The phases' ticks and gaps against the idle phase (the first row), then where the long gaps were."""
    idle = rows[0]
    print(
        f"{'phase':<16} {'ticks':>6} {'max gap ms':>10} {'p99 ms':>7} {'>50 ms':>6} {'ours >50':>8} "
        f"{'lib via ours':>12} {'max vs idle':>11}"
    )
    for r in rows:
        print(
            f"{r['phase']:<16} {r['ticks']:>6} {r['max']:>10.1f} {r['p99']:>7.1f} {r['over50']:>6} "
            f"{r['ours_over50']:>8} {r['via_ours_over50']:>12} {r['max'] / max(idle['max'], 1e-9):>10.2f}x"
        )
    for r in rows:
        blamed = r["blamed"].most_common()
        # every gap that involves our code, then the largest causes elsewhere
        mine = [b for b in blamed if "ours" in b[0]]
        for w, n in mine + [b for b in blamed if b not in mine][:8]:
            print(f"  {r['phase']}: {n} gap(s) > 50 ms in {w}")


def print_moves(moves: list[tuple[str, list[MoveRow]]]) -> None:
    """Per kind of move, medians: the latency to drawn against the forwards, and the window's repaints."""
    med = statistics.median
    n = max((len(m) for _, m in moves), default=0)
    print(f"\nper move (median of {n}; ms)")
    print(
        f"{'move':<15} {'to drawn':>9} {'job':>7} {'its fwd':>8} {'GUI fwd':>8} {'show':>6} "
        f"{'worst/own':>9} {'/GUI fwd':>9} {'repaints':>8} {'in them':>7}"
    )
    for name, m in moves:
        lat, own, gui, show, job, n_rep, rep_s = zip(*m, strict=True)
        worst = max(a / b for a, b in zip(lat, own, strict=True))
        per_gui = med([a / b for a, b in zip(lat, gui, strict=True)])
        print(
            f"{name:<15} {1000 * med(lat):>9.1f} {1000 * med(job):>7.1f} {1000 * med(own):>8.1f} "
            f"{1000 * med(gui):>8.1f} {1000 * med(show):>6.1f} {worst:>8.2f}x {per_gui:>8.2f}x "
            f"{sum(n_rep) / len(n_rep):>8.2f} {1000 * med(rep_s):>7.1f}"
        )
    print("  (repaints: the main window's per move, to 0.1 s after the drawing, mean; in them: ms, median)")


def print_parts(parts: list[tuple[str, Counter]], n_moves: int) -> None:
    """What the window's repaints painted, per kind of move: each set of parts and how often a move."""
    print("\nwhat the repaints painted (per move: how many repaints painted each set of parts)")
    for name, counter in parts:
        said = ", ".join(f"{n / n_moves:.2f} x {{{', '.join(sorted(p))}}}" for p, n in counter.most_common())
        print(f"  {name}: {said}")


def print_targets(
    slices: list[MoveRow], samples: list[MoveRow], idle_max: float, live_max: float, still_max: float
) -> None:
    """Issue 19 item 2's targets next to what was measured, and the live gaps against the same moves made with
    live prediction off (what predicting adds to napari's own slicing and drawing)."""
    med = statistics.median
    lat, own, gui, *_ = zip(*slices, strict=True)
    s_lat, s_own, s_gui, *_ = zip(*samples, strict=True)
    targets = [
        ("slice change to drawn / that request's forward", med([a / b for a, b in zip(lat, own)]), 1.2),
        ("slice change to drawn / GUI-thread forward", med([a / b for a, b in zip(lat, gui)]), 1.2),
        ("sample change to drawn / that request's forward", med([a / b for a, b in zip(s_lat, s_own)]), 1.2),
        ("sample change to drawn / GUI-thread forward", med([a / b for a, b in zip(s_lat, s_gui)]), 1.2),
        ("longest gap while live / idle longest gap", live_max / max(idle_max, 1e-9), 1.5),
    ]
    print(f"\n{'issue 19 item 2 target':<50} {'measured':>9} {'target':>7} met")
    for name, value, target in targets:
        print(f"{name:<50} {value:>8.2f}x {'<= ' + str(target) + 'x':>7} {'yes' if value <= target else 'no'}")
    print(f"  (idle longest gap {idle_max:.1f} ms, live longest gap {live_max:.1f} ms)")
    print(
        f"{'longest gap while live / same moves not live':<50} {live_max / max(still_max, 1e-9):>8.2f}x "
        f"(not live: {still_max:.1f} ms; a reading, not the issue's target)"
    )
