"""Static files are cached for a year under a content-hash URL (slow links fetch them once);
pages are never cached (they hold children's data)."""
from __future__ import annotations

import re


def test_static_files_are_cached_for_a_year_and_pages_are_not(client):
    page = client.get("/login")
    assert page.headers["Cache-Control"] == "no-store"
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', page.get_data(as_text=True))
    assert urls and all(re.search(r"\?v=[0-9a-f]{12}$", url) for url in urls), urls
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200
        # Flask's default (None) answered "no-cache": every page view asked for them again.
        assert re.search(r"max-age=31536000\b", response.headers["Cache-Control"]), response.headers
        response.close()
