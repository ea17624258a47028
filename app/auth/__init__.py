"""Log in and out, sessions, throttling, second factor, passwords."""
