"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

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
