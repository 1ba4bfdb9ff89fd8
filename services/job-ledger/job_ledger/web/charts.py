"""The history chart: server-rendered SVG of duration and failure count per run, no JavaScript.

Oldest run on the left. A bar per run is its duration (coloured by status, linking to the
job), a dot per run on the line is its failure count on its own scale, so a slow run or a bad
one stands out at a glance. Every text is escaped; the result is ready to embed.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from chassis.local_time import UTC_ZONE
from job_ledger.web.display import human_duration, moment
from job_ledger.web.rows import JobLog

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 76, 16, 28
COLOURS = {"completed": "#1a7f37", "failed": "#cf222e", "running": "#0969da"}
FAILURE_COLOUR = "#9a6700"


def _duration_ms(job: JobLog, now: datetime) -> int:
    if job.duration_ms is not None:
        return job.duration_ms
    if job.status == "running":
        return max(0, int((now - job.started_at).total_seconds() * 1000))
    return 0


def runs_chart(jobs: list[JobLog], now: datetime, zone: ZoneInfo = UTC_ZONE) -> Markup:
    """Return the SVG for ``jobs`` (newest first, as listed), moments in ``zone``; a short
    note when there are none."""
    if not jobs:
        return Markup('<p class="muted">No runs yet.</p>')
    runs = list(reversed(jobs))
    durations = [_duration_ms(j, now) for j in runs]
    failures = [j.daos_failed for j in runs]
    max_duration = max(max(durations), 1)
    max_failures = max(max(failures), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(runs)
    bar_w = max(2.0, slot * 0.6)

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"'
        ' aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Duration (bars) and failed DAOs (line) of the'
        f" {len(runs)} runs listed, oldest first</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}"'
        ' stroke="#8c959f"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end" class="axis">'
        f"{escape(human_duration(max_duration))}</text>",
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end" class="axis">0</text>',
        f'<text x="{LEFT + plot_w + 6}" y="{TOP + 10}" class="axis" fill="{FAILURE_COLOUR}">'
        f"{max_failures} failed</text>",
        f'<text x="{LEFT}" y="{HEIGHT - 8}" class="axis">oldest</text>',
        f'<text x="{LEFT + plot_w}" y="{HEIGHT - 8}" text-anchor="end" class="axis">newest</text>',
    ]
    points = []
    for i, (job, duration, failed) in enumerate(zip(runs, durations, failures, strict=True)):
        x = LEFT + i * slot + (slot - bar_w) / 2
        h = plot_h * duration / max_duration
        label = (
            f"{moment(job.started_at, zone)}: {job.status}, {human_duration(duration)},"
            f" {job.daos_processed} of {job.daos_total} processed, {failed} failed"
        )
        parts.append(
            f'<a href="/admin/jobs/{escape(str(job.id))}">'
            f'<rect class="run-bar {escape(job.status)}"'
            f' x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{bar_w:.1f}" height="{max(h, 1):.1f}"'
            f' fill="{COLOURS.get(job.status, "#8c959f")}">'
            f"<title>{escape(label)}</title></rect></a>"
        )
        points.append((LEFT + i * slot + slot / 2, TOP + plot_h - plot_h * failed / max_failures))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    parts.append(
        f'<polyline points="{path}" fill="none" stroke="{FAILURE_COLOUR}" stroke-width="2"/>'
    )
    parts.extend(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{FAILURE_COLOUR}"/>' for x, y in points
    )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 every part is escaped or our own markup
