"""Call flows, one module per FastAGI script name (``agi://host:port/<name>``)."""
