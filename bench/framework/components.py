"""The framework floor's API key check and renderer (DRF's settings name them, so they live
apart from the views, which import DRF's APIView and with it those settings)."""

import hashlib
import hmac
import os
import re

from rest_framework import authentication, exceptions, renderers

KEY_HASH = os.environ["BENCH_FRAMEWORK_KEY_HASH"]
KEY_PATTERN = re.compile(r"sk_[A-Za-z0-9_-]{32,200}")  # a key's shape, as the product checks


class KeyPrincipal:
    is_authenticated = True
    is_active = True
    is_anonymous = False


class HeaderKeyAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <key>` or `x-api-key: <key>`: the shape checked, the key hashed
    and compared with the one known hash (in memory, where the product asks its database)."""

    def authenticate(self, request):
        authorization = request.META.get("HTTP_AUTHORIZATION")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise exceptions.AuthenticationFailed("the API key is malformed")
            raw_key = credentials.strip()
        else:
            raw_key = request.META.get("HTTP_X_API_KEY", "").strip()
            if not raw_key:
                return None
        if not KEY_PATTERN.fullmatch(raw_key):
            raise exceptions.AuthenticationFailed("the API key is malformed")
        if not hmac.compare_digest(hashlib.sha256(raw_key.encode()).hexdigest(), KEY_HASH):
            raise exceptions.AuthenticationFailed("the API key is not valid")
        return KeyPrincipal(), raw_key

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class BodyRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer; bytes (a captured body) are the rendering itself."""

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if isinstance(data, bytes):
            return data
        return super().render(data, accepted_media_type, renderer_context)
