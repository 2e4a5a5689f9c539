"""Text rendering of ``task status``: counts, each host's last cycle, attention grouped by task,
then every row (with the host its worker runs on)."""

from __future__ import annotations

from ..state import Classification
from ..status import CycleView, Observation
from .app import table


def render_status(seen: Observation) -> str:
    """The human form of an observation (counts are those of the rows shown)."""
    counts = "  ".join(f"{bucket} {n}" for bucket, n in seen.counts.items())
    lines = [f"source: {seen.ref or 'working tree'}   {counts}", *_cycle_lines(seen)]
    if seen.stale:
        lines.append(f"warning: {_stale_line(seen)}")
    lines += [f"warning: {w}" for w in seen.notices]
    if seen.registry_error:
        lines.append(f"registry unreadable: {seen.registry_error}")
    flagged = seen.attention
    if flagged:
        lines.append("\nneeds attention:")
        for c in flagged:
            lines.append(f"  {c.slug} ({c.bucket}, {c.state})")
            lines += [
                f"    {s.kind}: {s.reason}" + (f" (since {s.since})" if s.since else "") for s in c.signals
            ]
    body = table(
        [_row(c) for c in seen.rows],
        ("BUCKET", "STATE", "SLUG", "OWNER", "LEASE", "ATTEMPT", "FAILURES", "HOST", "DETAIL"),
    )
    return "\n".join(lines) + ("\n\n" + body if body else "")


def _cycle_lines(seen: Observation) -> list[str]:
    """One line for the last cycle; with several dispatch hosts, one more per host."""
    cycle = seen.cycle
    if cycle is None:
        return ["last heartbeat cycle: never"]
    lines = [f"last heartbeat cycle: {_cycle_text(cycle)}"]
    if len(seen.hosts) > 1:
        lines.append(f"dispatch hosts ({len(seen.hosts)}), each one's last cycle:")
        lines += [f"  {view.record.host or '?'}: {_cycle_text(view)}" for view in seen.hosts]
    return lines


def _cycle_text(cycle: CycleView) -> str:
    record = cycle.record
    stale = ", stale" if cycle.stale else ""
    took = f"{record.duration_ms:g} ms"
    return f"{record.generated_at} ({cycle.age_seconds} s ago, {took}, by {record.owner}{stale})"


def _stale_line(seen: Observation) -> str:
    if seen.cycle is None:
        return "no heartbeat cycle has run; is cron running task-manager-heartbeat?"
    return (
        f"the heartbeat is stale: no cycle for {seen.cycle.age_seconds} s "
        f"(limit {seen.cycle.stale_after:g} s); is cron running task-manager-heartbeat?"
    )


def _row(c: Classification) -> tuple[str, ...]:
    entry = c.entry
    lease = str(entry.lease) if entry else "-"
    # Two cells, not "6/5": runs are unbounded (a manual retry starts the count over), while
    # failures in a row are held to max_attempts.
    attempt = str(entry.attempt) if entry else "-"
    failures = f"{entry.consecutive_failures}/{entry.max_attempts}" if entry else "-"
    host = (entry.host if entry else None) or "-"
    return (c.bucket, c.state, c.slug, c.owner or "-", lease, attempt, failures, host, c.detail)
