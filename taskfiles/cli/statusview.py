"""Text rendering of ``task status``: counts, attention grouped by task, then every row."""

from __future__ import annotations

from collections.abc import Sequence

from ..runtime import StatusReport, attention
from ..state import Classification
from .app import table


def render_status(report: StatusReport, rows: Sequence[Classification]) -> str:
    """The human form of a status report."""
    counts = "  ".join(f"{bucket} {n}" for bucket, n in report.counts.items())
    lines = [f"source: {report.ref or 'working tree'}   {counts}", _cycle_line(report)]
    lines += [f"warning: {w}" for w in report.warnings]
    if report.registry_error:
        lines.append(f"registry unreadable: {report.registry_error}")
    flagged = attention(rows)
    if flagged:
        lines.append("\nneeds attention:")
        for c in flagged:
            lines.append(f"  {c.slug} ({c.bucket}, {c.state})")
            lines += [
                f"    {s.kind}: {s.reason}" + (f" (since {s.since})" if s.since else "") for s in c.signals
            ]
    body = table([_row(c) for c in rows], ("BUCKET", "STATE", "SLUG", "OWNER", "LEASE", "ATTEMPT", "DETAIL"))
    return "\n".join(lines) + ("\n\n" + body if body else "")


def _cycle_line(report: StatusReport) -> str:
    cycle = report.cycle
    if not cycle:
        return "last heartbeat cycle: never"
    return (
        f"last heartbeat cycle: {cycle.get('generated_at')} ({cycle.get('age_seconds')} s ago, "
        f"{cycle.get('duration_ms')} ms, by {cycle.get('owner')})"
    )


def _row(c: Classification) -> tuple[str, ...]:
    entry = c.entry
    owner = (c.task.owner if c.task else None) or (entry.owner if entry else None) or "-"
    lease = str(entry.lease) if entry else "-"
    attempt = f"{entry.attempt}/{entry.max_attempts}" if entry else "-"
    return (c.bucket, c.state, c.slug, owner, lease, attempt, c.detail)
