"""Container-engine configuration (containerd, CRI-O, Docker) and native-CDI detection.

``versions`` is stdlib-only and cheap: the Kubernetes planner imports it. The editors
(``containerd``, ``crio``, ``docker``) are pure text-in/text-out functions; ``apply``
is the thin I/O shell (backups, atomic writes, diffs).
"""
