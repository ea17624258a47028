"""Tasks: follow-ups and service due dates derived from record data ("due soon", "overdue")."""
