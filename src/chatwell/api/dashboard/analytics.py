"""Dashboard Analytics (owners and admins): activity over the last 30 days, unanswered and top
questions, feedback, tokens and cost by model. Charts are SVG built here, every label escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from fastapi import APIRouter, Request
from fastapi.responses import Response
from markupsafe import Markup, escape

from chatwell.api.dashboard.web import DashboardRoute, ManagerDep, db_of, render
from chatwell.services import analytics, bots

router = APIRouter(prefix="/dashboard", route_class=DashboardRoute, include_in_schema=False)
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 760, 180, 36, 24, 12


def bar_chart(
    days: Sequence[date], values: Sequence[int], *, label: str, color: str = "#2563eb"
) -> Markup:
    """A bar per day with the highest value on the axis; each bar's title gives the day and count."""
    high = max(values, default=0) or 1
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    step = plot_w / max(len(values), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}" stroke="#e3e7ec"/>',
        f'<text x="{LEFT - 6}" y="{TOP + 8}" text-anchor="end">{high}</text>',
        f'<text x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        h = plot_h * value / high
        x = LEFT + i * step + step * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}" '
            f'fill="{escape(color)}" data-day="{day.isoformat()}" data-value="{value}">'
            f"<title>{escape(day.isoformat())}: {value}</title></rect>"
        )
        if i % 5 == 0 or i == len(values) - 1:
            parts.append(
                f'<text x="{x + step * 0.35:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(day.strftime('%b %d'))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


def share_bar(positive: int, negative: int) -> Markup:
    """Thumbs up against thumbs down as one horizontal bar."""
    total = positive + negative
    width = 300
    good = width * positive / total if total else 0
    label = f"{positive} positive, {negative} negative"
    return Markup(
        f'<svg class="chart" data-kind="share" role="img" viewBox="0 0 {width} 24" preserveAspectRatio="none" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(label)}</title>'
        f'<rect x="0" y="4" width="{width}" height="16" fill="{"#fee4e2" if total else "#e3e7ec"}"/>'
        f'<rect x="0" y="4" width="{good:.1f}" height="16" fill="#067647"/></svg>'
    )


@router.get("/analytics")
async def analytics_page(request: Request, user: ManagerDep) -> Response:
    db = db_of(request)
    page = await bots.list_bots(db, principal=user.principal, limit=100)
    ref = request.query_params.get("bot_id") or None
    bot = await bots.get_bot(db, principal=user.principal, ref=ref) if ref else None
    report = await analytics.report(
        db, workspace_id=user.workspace_id, bot_id=bot.id if bot else None
    )
    charts = {
        "messages": bar_chart(report.days, report.messages_per_day, label="Messages per day"),
        "conversations": bar_chart(
            report.days,
            report.conversations_per_day,
            label="Conversations per day",
            color="#0f766e",
        ),
        "feedback": share_bar(report.positive, report.negative),
    }
    return render(
        request,
        "analytics.html",
        user=user,
        report=report,
        charts=charts,
        bots=page.items,
        selected=bot,
    )
