"""Home page, language switch, health check."""
