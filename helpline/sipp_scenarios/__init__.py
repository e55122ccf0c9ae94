"""sipp scenarios (XML; some are Jinja templates rendered by helpline.sipp)."""
