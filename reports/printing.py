"""Printable summaries of a case and of a tracing request, as PDF (WeasyPrint).

The summary is an HTML page rendered from Jinja templates with the form engine's own
read-only macro (forms/macros.html `render_readonly`), so it holds exactly the sections
and fields the reader may read, labelled in the reader's language, and the same
display values as the record page (S3). Arabic pages are right to left; Pango and
HarfBuzz shape the Arabic script, in DejaVu Sans (Latin and Arabic) with fontconfig's
fallbacks for other scripts.

WeasyPrint is given no base URL and a fetcher that only accepts `data:` URLs: the page
cannot make the server fetch anything (a URL typed into a record is text, never a
resource). Photos are embedded as data URLs, and only those in fields the reader may read.

Printing is an export of a record: the caller audits it (S14) and answers with
Cache-Control: no-store (S20).
"""
from __future__ import annotations

import base64
import time
from dataclasses import dataclass
from pathlib import Path

from flask import current_app, render_template

STYLESHEET = Path(__file__).with_name("print.css")
MAX_PHOTOS = 6  # a summary, not an album: the first photos of each record


@dataclass(frozen=True)
class PrintedPhoto:
    attachment_id: str
    data_url: str


@dataclass(frozen=True)
class Printed:
    pdf: bytes
    seconds: float       # rendering time, logged for the operators of slow machines
    photos: tuple[str, ...]  # attachment ids embedded


def readable_photos(record) -> list[PrintedPhoto]:
    """The record's photos held by photo fields the current user may read, as data URLs (S3)."""
    from flask_login import current_user

    from app.records.attachments import _path_for, attachments_of
    from forms.operations import readable_fields
    readable = readable_fields(current_user, record.RECORD_TYPE)
    data = record.data or {}
    photos = []
    for item in attachments_of(record):
        held = data.get(item.field_key) if item.field_key in readable else None
        # Only files the form still holds, in a field the reader may read; only images.
        if item.kind != "photo" or not isinstance(held, list) or item.id not in held \
                or not item.content_type.startswith("image/"):
            continue
        try:
            content = _path_for(item.storage_name).read_bytes()
        except OSError:  # a file missing on disk: the summary still prints, without it
            current_app.logger.warning("photo %s of a %s is missing on disk", item.id, record.RECORD_TYPE)
            continue
        encoded = base64.b64encode(content).decode("ascii")
        photos.append(PrintedPhoto(item.id, f"data:{item.content_type};base64,{encoded}"))
        if len(photos) >= MAX_PHOTOS:
            break
    return photos


def html_to_pdf(html: str) -> bytes:
    """Lay out `html` with the print stylesheet; no resource is fetched except data: URLs."""
    from weasyprint import CSS, HTML
    from weasyprint.urls import URLFetcher
    fetcher = URLFetcher(allowed_protocols={"data"})
    stylesheet = CSS(string=STYLESHEET.read_text(encoding="utf-8"), url_fetcher=fetcher)
    return HTML(string=html, base_url=None, url_fetcher=fetcher).write_pdf(stylesheets=[stylesheet])


def render_summary(template: str, **context) -> Printed:
    """Render a summary template (in the current request's language) to PDF."""
    started = time.perf_counter()
    from app.db import utcnow
    html = render_template(template, printed_at=utcnow(), **context)
    pdf = html_to_pdf(html)
    photos = tuple(photo.attachment_id for photo in context.get("photos", ()))
    photos += tuple(photo.attachment_id for entry in context.get("traces", ()) for photo in entry.get("photos", ()))
    return Printed(pdf, time.perf_counter() - started, photos)
