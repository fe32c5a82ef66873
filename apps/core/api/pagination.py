"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

import base64

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

    def decode_cursor(self, request):
        # DRF's decoder skips what is not base64 and reads nothing as the first page: `cursor=%%%` or
        # `cursor=` would answer a tampered request with page one instead of refusing it.
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is not None:
            try:
                decoded = base64.b64decode(encoded.encode("ascii"), validate=True)
            except (ValueError, UnicodeEncodeError):
                decoded = b""
            if not decoded:
                raise NotFound(self.invalid_cursor_message)
        return super().decode_cursor(request)

    def paginate_queryset(self, queryset, request, view=None):
        # A cursor the server never issued is bad input, a 400 that names it (DRF answers 404).
        try:
            return super().paginate_queryset(queryset, request, view)
        except NotFound as exc:
            raise ValidationError({self.cursor_query_param: [str(exc.detail)]}) from exc
        except (ValueError, TypeError, DjangoValidationError) as exc:  # decodes, but its values do not fit
            raise ValidationError({self.cursor_query_param: [self.invalid_cursor_message]}) from exc


def keyset_pagination(*ordering: str) -> type[KeysetPagination]:
    """A pagination class ordered by the given fields (the last one unique, e.g. the id)."""
    return type("KeysetPagination", (KeysetPagination,), {"ordering": ordering})
