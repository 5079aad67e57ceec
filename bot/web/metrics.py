"""Prometheus metrics: messages in and out by channel and outcome, queue depth, send latency, alerts.

Each app gets its own registry (tests build many apps in one process). Queue depth and open alerts
are read from the database when scraped, so they are right across several processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

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
        self.messages_in = Counter(
            "rapport_messages_in",
            "Inbound webhooks/updates by channel and outcome.",
            ["channel", "outcome"],
            registry=r,
        )
        self.messages_out = Counter(
            "rapport_messages_out", "Outbound sends by channel and outcome.", ["channel", "status"], registry=r
        )
        self.rejected = Counter(
            "rapport_webhooks_rejected", "Webhooks refused (signature, malformed).", ["channel", "reason"], registry=r
        )
        self.delivery = Counter(
            "rapport_delivery_status", "Provider delivery reports by status.", ["channel", "status"], registry=r
        )
        self.held = Counter("rapport_messages_held", "Messages due and not sent, by reason.", ["reason"], registry=r)
        self.alerts_raised = Counter(
            "rapport_alerts_raised", "Crisis alerts raised and re-sent.", ["level"], registry=r
        )
        self.send_seconds = Histogram(
            "rapport_send_seconds", "Provider call latency.", ["channel"], buckets=_FAST, registry=r
        )
        self.outbox_delay = Histogram(
            "rapport_outbox_delay_seconds",
            "From the outbox row's creation to the provider's answer.",
            ["urgency"],
            buckets=_FAST,
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "rapport_webhook_seconds", "Webhook handling time.", ["channel"], buckets=_FAST, registry=r
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
