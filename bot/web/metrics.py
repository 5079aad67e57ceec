"""Prometheus metrics: messages in and out by channel and outcome, queue depth, send latency, alerts.

Each app gets its own registry (tests build many apps in one process). Queue depth and open alerts
are read from the database when scraped, so they are right across several processes.

Label values are closed sets (channels, outcomes, reasons, statuses): ``SafeLabels`` turns
anything else into ``other``, so a phone number, a message or a token can never become a label,
and a stream of odd values cannot grow the scrape without bound. Who may scrape: SECURITY.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine as DbEngine

from bot import outbox
from bot.outbox import SendReport
from bot.unit import Note

log = logging.getLogger("rapport.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FAST = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Words, as every label value we set is ("sms", "duplicate", "bad signature", "quiet_hours"): a
# value starting with a letter, without "+", "@" or ":" and without a run of four digits, so no
# phone number, chat id, e-mail address or token fits.
_LABEL = re.compile(r"^[A-Za-z](?!.*\d{4})[A-Za-z0-9_ .-]{0,47}$")
M = TypeVar("M", Counter, Histogram)


def safe_label(value: object) -> str:
    v = str(value)
    return v if _LABEL.match(v) else "other"


class SafeLabels(Generic[M]):
    """A labelled metric whose label values are checked by ``safe_label``."""

    def __init__(self, metric: M):
        self.metric: M = metric

    def labels(self, *values: object) -> M:
        return self.metric.labels(*(safe_label(v) for v in values))


class _DbCollector(Collector):
    def __init__(self, db: DbEngine):
        self.db = db

    def collect(self) -> Iterable[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            "rapport_outbox_queue_depth", "Outbox rows not yet final.", labels=["channel", "status"]
        )
        alerts = GaugeMetricFamily("rapport_alerts_open", "Crisis alerts not resolved, by status.", labels=["status"])
        unanswered = GaugeMetricFamily(
            "rapport_alerts_unanswered", "Open alerts that went through every on-call person unacknowledged."
        )
        try:
            for (channel, status), n in sorted(outbox.pending_counts(self.db).items()):
                depth.add_metric([channel, status], n)
            counts = outbox.open_alert_counts(self.db)
            for status in ("open", "acked"):
                alerts.add_metric([status], counts.get(status, 0))
            unanswered.add_metric([], counts.get("unanswered", 0))
        except Exception as e:  # a scrape must not take the app down with the database
            log.warning("metrics: database unavailable (%s)", type(e).__name__)
        yield depth
        yield alerts
        yield unanswered


class Metrics:
    def __init__(self, db: DbEngine):
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = SafeLabels(
            Counter(
                "rapport_messages_in",
                "Inbound webhooks/updates by channel and outcome.",
                ["channel", "outcome"],
                registry=r,
            )
        )
        self.messages_out = SafeLabels(
            Counter("rapport_messages_out", "Outbound sends by channel and outcome.", ["channel", "status"], registry=r)
        )
        self.rejected = SafeLabels(
            Counter(
                "rapport_webhooks_rejected",
                "Webhooks refused (signature, malformed).",
                ["channel", "reason"],
                registry=r,
            )
        )
        self.delivery = SafeLabels(
            Counter(
                "rapport_delivery_status", "Provider delivery reports by status.", ["channel", "status"], registry=r
            )
        )
        self.held = SafeLabels(
            Counter("rapport_messages_held", "Messages due and not sent, by reason.", ["reason"], registry=r)
        )
        self.alerts_raised = SafeLabels(
            Counter("rapport_alerts_raised", "Crisis alerts raised and re-sent.", ["level"], registry=r)
        )
        self.send_seconds = SafeLabels(
            Histogram("rapport_send_seconds", "Provider call latency.", ["channel"], buckets=_FAST, registry=r)
        )
        self.outbox_delay = SafeLabels(
            Histogram(
                "rapport_outbox_delay_seconds",
                "From the outbox row's creation to the provider's answer.",
                ["urgency"],
                buckets=_FAST,
                registry=r,
            )
        )
        self.webhook_seconds = SafeLabels(
            Histogram("rapport_webhook_seconds", "Webhook handling time.", ["channel"], buckets=_FAST, registry=r)
        )
        r.register(_DbCollector(db))

    def on_send(self, rep: SendReport) -> None:
        self.messages_out.labels(rep.channel, rep.outcome).inc()
        self.send_seconds.labels(rep.channel).observe(rep.seconds)
        urgency = "crisis" if rep.priority >= outbox.URGENT else "normal"
        self.outbox_delay.labels(urgency).observe(max(rep.queued_seconds, 0.0))

    def on_notes(self, notes: list[Note]) -> None:
        for n in notes:
            if n.type == "held":
                self.held.labels(str(n.data.get("reason"))).inc()
            elif n.type == "alert":
                self.alerts_raised.labels(str(n.data.get("level"))).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
