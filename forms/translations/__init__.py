"""The form engine's own message catalogue (French and Arabic).

The `.po` files here are the source; `.mo` files are build output (git ignores them),
so at start-up each catalogue is compiled when missing or older than its source,
into the instance folder (or the system's temporary folder if that is read-only),
and that folder is added to Flask-Babel's translation directories.
"""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

SOURCE = Path(__file__).parent


def _compile(target: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po
    for po_path in SOURCE.glob("*/LC_MESSAGES/messages.po"):
        locale = po_path.parent.parent.name
        mo_path = target / locale / "LC_MESSAGES" / "messages.mo"
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as handle:
            catalog = read_po(handle, locale=locale)
        partial = mo_path.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        partial.replace(mo_path)  # atomic: a concurrent worker never reads half a file


def install_translations(app) -> None:
    candidates = [Path(app.instance_path) / "translations" / "forms",
                  Path(tempfile.gettempdir()) / f"cpims-forms-translations-{os.getuid()}"]
    for target in candidates:
        try:
            _compile(target)
        except OSError:
            continue
        directories = app.extensions["babel"].translation_directories
        if str(target) not in directories:
            directories.append(str(target))
        return
    log.warning("the forms translations could not be compiled: forms show in English")
