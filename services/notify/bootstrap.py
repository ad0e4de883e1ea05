"""The one place notify is wired: runtime, consumer, delivery worker, channels, HTTP."""
from __future__ import annotations

from pathlib import Path

from shared.clock import Clock
from shared.contracts.cases import (
    CaseAccepted, CaseClosed, CaseDispatched, CaseEscalated, CaseExplained, CaseExtensionDecided, CaseMerged,
    CaseRejected, CaseReopened, CaseReported, CaseResolved, CaseResumed, CaseReturned, CaseReworked, CaseSigned,
    CaseSuspended,
)
from shared.contracts.contacts import ContactRecorded
from shared.http import create_app
from shared.messagebus import CaseOrderedBus, MessageBus, carrying_only
from shared.runtime import Service, ServiceRuntime
from shared.settings import Settings
from shared.street import read_duty_roster, street_config_folder
from shared.street_rules import (
    CONSUMER_SUFFIX, STREET_CONFIG_TYPES, StreetRules, apply_street_config_event, street_file_config,
)

from services.notify.adapters.channels import SmsChannel
from services.notify.adapters.email import EmailChannel
from services.notify.adapters.webhooks import WebhookChannel
from services.notify.adapters.templates import load_template_sources
from services.notify.domain.delivery import RetryPolicy
from services.notify.domain.replies import ReplyTemplates
from services.notify.entrypoints.http import build_router
from services.notify.entrypoints.lookup import build_lookup_router
from services.notify.entrypoints.residents import build_residents_router
from services.notify.entrypoints.templates import build_templates_router
from services.notify.entrypoints.webhooks import build_webhooks_router
from services.notify.handlers import (
    CONSUMER, CONTACTS_CONSUMER, Replier, acknowledge, alert_leader, answer_closing, answer_explanation,
    answer_extension, answer_merge, answer_rejection, answer_reopening, answer_signing, contacts_arrived,
    lock_residents, note_reported, record_status,
)
from services.notify.residents import Residents
from services.notify.worker import DeliveryWorker, ErasureWorker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build(settings: Settings, manage_runtime: bool = True, *, retry_policy: RetryPolicy | None = None,
          clock: Clock | None = None) -> Service:
    """notify, ready to start: consumes wangge.cases and wangge.contacts, sends SMS, publishes wangge.replies
    and survey answers, erases residents' data after the survey window.

    `retry_policy` (backoff and lease) is for tests that cannot wait minutes; services use the default. `clock`:
    a test's own (the handlers read the time from it).
    """
    runtime = ServiceRuntime("notify", settings, MIGRATIONS)
    clock = clock or Clock()  # one time for the handlers, the workers and the HTTP commands
    templates = ReplyTemplates(load_template_sources())
    # The street's time rules (the survey window) in force, learnt from supervision; its file until then.
    street_rules = StreetRules(street_file_config(settings))
    runtime.consume([runtime.topics.street_config], apply_street_config_event, group_suffix=CONSUMER_SUFFIX,
                    types=set(STREET_CONFIG_TYPES))
    # 带班领导: the street's duty roster, beside its time rules (streets/<name>/<name>-duty.csv).
    duty = read_duty_roster(street_config_folder(settings.street_dir, settings.street_config_dir))
    replier = Replier(topics=runtime.topics, templates=templates, settings=settings, street_rules=street_rules,
                      duty=duty, clock=clock)
    # Every case event that moves a case's state records it (record_status, after the event's own reaction); the
    # consumer skips the types named nowhere here. wangge.cases promises order per case only: a batch's runs are cut
    # across cases (a burst of reports and acceptances is two runs, not one per event), but at a merge, whose
    # followers the next replies of another case must reach; the batch's residents' locks are taken first, at once.
    cases = CaseOrderedBus(
        barriers=[CaseMerged],
        first=lock_residents,
        consumer=CONSUMER,
        events={
            CaseReported: [note_reported, record_status],
            CaseAccepted: [acknowledge, record_status],
            CaseRejected: [answer_rejection, record_status],
            CaseMerged: [answer_merge, record_status],
            CaseSigned: [answer_signing, record_status],
            CaseExplained: [answer_explanation, record_status],
            CaseClosed: [answer_closing, record_status],
            CaseReopened: [answer_reopening, record_status],
            CaseDispatched: [record_status], CaseReturned: [record_status], CaseSuspended: [record_status],
            CaseResumed: [record_status], CaseResolved: [record_status], CaseReworked: [record_status],
            CaseExtensionDecided: [answer_extension],
            CaseEscalated: [alert_leader],
        },
        deps={"replier": replier},
    )
    runtime.consume([runtime.topics.cases], cases)
    # Residents' contacts come from intake on their own topic, which only notify reads (DESIGN
    # "Personal data"); a second consumer group, since the two topics have no order between them.
    contacts = MessageBus(consumer=CONTACTS_CONSUMER,
                          events=carrying_only("wangge.contacts", {ContactRecorded: [contacts_arrived]}),
                          deps={"replier": replier})
    runtime.consume([runtime.topics.contacts], contacts, group_suffix="-contacts")
    # notify holds the contact from here on (and erases it): the topic keeps it no longer than notify's commit.
    runtime.trim_taken(runtime.topics.contacts, group_suffix="-contacts")
    # More channels (e-mail, webhook) are added to this list; a delivery names the one it uses.
    email = EmailChannel(host=settings.smtp_host, port=settings.smtp_port, sender=settings.smtp_sender,
                         signature=settings.sms_signature, starttls=settings.smtp_starttls,
                         username=settings.smtp_username, password=settings.smtp_password)
    webhook = WebhookChannel(lambda: runtime.pool)
    worker = DeliveryWorker(runtime, [SmsChannel(settings.sms_gateway_url,
                                                 connections=settings.sms_gateway_connections), email, webhook],
                            retry_policy or RetryPolicy(), street_rules=street_rules,
                            concurrency=settings.sms_gateway_connections, clock=clock)
    runtime.worker("deliveries", worker.run, worker.heartbeat)
    erasure = ErasureWorker(runtime, after_days=settings.erase_after_days, poll_seconds=settings.erasure_poll_seconds,
                            clock=clock)
    runtime.worker("erasure", erasure.run)
    app = create_app(
        runtime,
        title="wangge notify",
        description="Replies to residents: acknowledgements and later progress, resolution, explanation and "
        "survey messages by SMS, retried through gateway outages; every reply and its delivery state is published "
        "on wangge.replies. Residents look up their own case and answer the survey (web or SMS reply); answers go "
        "out as case.survey-answered on wangge.cases.",
        manage_runtime=manage_runtime,
    )
    app.include_router(build_router(runtime, clock))
    app.include_router(build_lookup_router(runtime))
    # The resident page's own endpoints (/my/): phone proof, their cases, the survey link.
    app.include_router(build_residents_router(runtime, Residents(runtime, clock), clock))
    app.include_router(build_templates_router(runtime, templates))
    app.include_router(build_webhooks_router(runtime))
    app.state.buses = {"cases": cases, "contacts": contacts}  # for tests that hand a batch to a bus directly
    app.state.delivery_worker = worker
    return Service(runtime, app)
