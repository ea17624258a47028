"""Notifications: an in-app inbox per user, with optional e-mail sent by a background job.

Other features call `app.notifications.operations.notify(...)`; messages are stored as
untranslated msgids with plain parameters and translated when shown, in the reader's language.
"""
