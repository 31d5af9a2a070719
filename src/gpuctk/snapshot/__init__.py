"""Node snapshots (``gpuctk snapshot``) and the checks ``gpuctk doctor`` runs on them."""
