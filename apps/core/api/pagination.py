"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

from django.core.exceptions import ValidationError
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000

    def paginate_queryset(self, queryset, request, view=None):
        try:
            return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, ValidationError) as exc:  # a tampered cursor
            raise NotFound(self.invalid_cursor_message) from exc


def keyset_pagination(*ordering: str) -> type[KeysetPagination]:
    """A pagination class ordered by the given fields (the last one unique, e.g. the id)."""
    return type("KeysetPagination", (KeysetPagination,), {"ordering": ordering})
