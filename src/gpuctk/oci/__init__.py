"""OCI runtime command lines and runtime specs (raw dicts), stdlib only."""
