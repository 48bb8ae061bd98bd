"""The Content-Security-Policy of the HTML pages (the admin, the browsable API, Swagger UI).

django-csp builds the header from ``CONTENT_SECURITY_POLICY`` (crm/settings/base.py): scripts,
styles, images and requests from this origin only, no plugins, no framing. The few inline
``<script>`` and ``<style>`` blocks that remain (Swagger UI's initialisation, the browsable
API's code highlighting) carry the request's nonce (``request.csp_nonce``), which the header
then names; everything else is a static file.

Only HTML gets the header: a JSON, CSV or JavaScript response is never run as a page, and
building the policy (~30 µs) would cost every API call for nothing.
"""

from csp.middleware import CSPMiddleware


class HtmlContentSecurityPolicyMiddleware(CSPMiddleware):
    def process_response(self, request, response):
        if not response.get("Content-Type", "").startswith("text/html"):
            return response
        return super().process_response(request, response)
