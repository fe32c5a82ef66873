"""Keyset (cursor) pagination: stable under inserts and cheap at any depth, unlike OFFSET."""

from rest_framework.pagination import CursorPagination


class KeysetPagination(CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000


def keyset_pagination(*ordering: str) -> type[KeysetPagination]:
    """A pagination class ordered by the given fields (the last one unique, e.g. the id)."""
    return type("KeysetPagination", (KeysetPagination,), {"ordering": ordering})
