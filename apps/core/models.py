"""Rows the core app keeps: the Idempotency-Key claims of the API's creates (apps.core.idempotency)."""

from __future__ import annotations

from django.db import models


class IdempotencyKey(models.Model):
    """A client's Idempotency-Key on a create, kept a day: a retry of the same request answers what the first one
        did instead of creating again. Holds no PHI: an HMAC of the client's key (keys are often built from an MRN or a
    name), a SHA-256 of the request (method, path, body) and the
        id of what it created, which a replay renders afresh (the answer itself, a patient's name, is not stored)."""

    client = models.CharField(max_length=64, help_text="The API client or staff user that sent the key.")
    key = models.CharField(
        max_length=255, help_text="HMAC-SHA256 (hex) of the client and its Idempotency-Key, never the key as sent."
    )
    request_sha256 = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    resource_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["client", "key"], name="core_idempotency_client_key")]
        indexes = [models.Index(fields=["expires_at"], name="core_idempotency_expires")]

    def __str__(self) -> str:
        return f"IdempotencyKey {self.pk}"
