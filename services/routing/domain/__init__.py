"""Routing's pure rules: who owns a case, and when it is due. No I/O here."""
