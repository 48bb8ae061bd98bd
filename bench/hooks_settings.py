"""crm.settings.production with webhooks allowed to private addresses, for the benchmark's
webhook receiver on 127.0.0.1 (production refuses them: endpoints must be public https://).
Only bench/eventlog.py uses it, for the endpoint's creation and the delivery workers."""

from crm.settings.production import *  # noqa: F403 (the production settings, all of them)

WEBHOOKS_ALLOW_PRIVATE_URLS = True
