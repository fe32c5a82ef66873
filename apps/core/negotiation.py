"""Content negotiation that honours the Accept header's quality values.

DRF's negotiation orders accepted types by how specific they are and ignores `q`, so
`application/fhir+json;q=0, application/json` was answered in FHIR's type, and `*/*;q=0` (nothing is
acceptable) with a 200. Here each renderer gets the quality of the most specific range that matches it
(RFC 9110, 12.5.1), `q=0` means not acceptable, and the best quality wins; among equals, the more
specific range, then the view's renderer order, as DRF chooses. A range naming a `fhirVersion` matches only
a renderer that writes that version (`fhir_versions`).
"""

from __future__ import annotations

import contextlib
import re

from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.utils.mediatypes import _MediaType

# A qvalue: 0 to 1 with at most three decimals. Anything else is read as no weight given (1).
_QVALUE = re.compile(r"(0(\.\d{0,3})?|1(\.0{0,3})?)")


def _quality(accepted: _MediaType) -> float:
    value = accepted.params.get("q")
    return float(value) if value is not None and _QVALUE.fullmatch(value) else 1.0


class UnknownFormat(exceptions.ValidationError):
    """DRF's `?format=` (or a format suffix) naming no renderer of the view: DRF raised Http404, a "Not found."
    that read as "no such resource" for one that exists. Also `?format=` given twice: DRF answered in the last
    one (`/api/schema/?format=json&format=yaml` was YAML), a choice the client did not make. The message names
    the formats the view answers (the schema: json, yaml; the docs: html)."""

    def __init__(self, formats: list[str] | None = None, *, repeated: bool = False) -> None:
        answers = ", ".join(formats or ["json"])
        if repeated:
            message = f"Given more than once: name one format. This view answers: {answers}."
        else:
            message = f"Not a format this view answers. It answers: {answers} (or leave `format` out)."
        super().__init__({"format": message})
        self.repeated = repeated


def _formats(renderers: list[BaseRenderer]) -> list[str]:
    return sorted({renderer.format for renderer in renderers if getattr(renderer, "format", None)})


# The types an error body is written in: the API's JSON, FHIR's OperationOutcome.
_ERROR_TYPES = ("application/json", "application/fhir+json")


def _error_renderer(renderers: list[BaseRenderer]) -> BaseRenderer:
    """What a refused format's 400 is written in: the view's first JSON renderer, or plain JSON. DRF wrote it in
    the view's first renderer, whatever that is: the schema's refusal came as YAML, the docs' as an HTML page."""
    return next((renderer for renderer in renderers if renderer.media_type in _ERROR_TYPES), JSONRenderer())


def answers_fhir_version(renderer: BaseRenderer, accepted: _MediaType) -> bool:
    """Whether `renderer` can answer a range's `fhirVersion` (FHIR's mime-type parameter). A renderer declares
    the versions it writes in `fhir_versions` (major.minor: "4.0" answers 4.0 and 4.0.1); one that declares
    none is no FHIR renderer and ignores the parameter. `fhirVersion=3.0` was answered in R4, which a STU3
    client cannot read: FHIR has a server answer 406 for a version it does not support."""
    asked = accepted.params.get("fhirversion")  # parameter names are case-insensitive (lower-cased when parsed)
    versions = getattr(renderer, "fhir_versions", None)
    if asked is None or versions is None:
        return True
    return any(asked == version or asked.startswith(f"{version}.") for version in versions)


def only_other_fhir_versions(accepts: list[_MediaType], renderer: BaseRenderer) -> bool:
    """Whether the Accept ranges name fhirVersions, none of which `renderer` writes: where the type was chosen
    in the URL (`_format`, `format`), the version the client reads is still the header's to say."""
    asked = [accepted for accepted in accepts if "fhirversion" in accepted.params]
    return bool(asked) and not any(answers_fhir_version(renderer, accepted) for accepted in asked)


class QualityContentNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: list[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        if getattr(request, "_format_refused", False):
            # Asked again, by DRF, for the renderer of this refusal (APIView.perform_content_negotiation, force):
            # JSON, whichever the view answers in.
            renderer = _error_renderer(renderers)
            return renderer, renderer.media_type
        format_param = self.settings.URL_FORMAT_OVERRIDE
        if format_param and len(request.query_params.getlist(format_param)) > 1:
            self._refuse_format(request)
            raise UnknownFormat(_formats(renderers), repeated=True)
        # A format named in the URL is the client's explicit choice: DRF's rules, as before.
        if format_suffix or request.query_params.get(format_param):
            try:
                chosen = super().select_renderer(request, renderers, format_suffix)
            except Http404:
                self._refuse_format(request)
                raise UnknownFormat(_formats(renderers)) from None
            if only_other_fhir_versions(self._get_parsed_accept_list(request), chosen[0]):
                raise exceptions.NotAcceptable(available_renderers=renderers)
            return chosen
        accepts = self._get_parsed_accept_list(request)  # parsed once per request, shared with DRF's
        best = None
        for order, renderer in enumerate(renderers):
            offered = _MediaType(renderer.media_type)
            matching = [
                accepted for accepted in accepts if offered.match(accepted) and answers_fhir_version(renderer, accepted)
            ]
            if not matching:
                continue
            # Max keeps the first of equally specific ranges: the client's own order.
            accepted = max(matching, key=lambda candidate: candidate.precedence)
            quality = _quality(accepted)
            rank = (quality, accepted.precedence, -order)
            if quality > 0 and (best is None or rank > best[0]):
                best = (rank, renderer, accepted)
        if best is None:
            raise exceptions.NotAcceptable(available_renderers=renderers)
        _, renderer, accepted = best
        # The renderer's own type with the client's parameters (JSON's indent), never the q weight itself.
        params = [f"{key}={value}" for key, value in accepted.params.items() if key != "q"]
        return renderer, ";".join([renderer.media_type, *params])

    @staticmethod
    def _refuse_format(request: Request) -> None:
        with contextlib.suppress(AttributeError):  # one that takes no attributes: its refusal is written as DRF's
            request._format_refused = True
