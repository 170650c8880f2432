"""bdr: backup and disaster recovery for the data behind an AI agent backend.

Redis (sessions, cache, RBAC), Qdrant (vector embeddings), configuration and secrets are
backed up into a repository of *backup sets*; drills break real services on purpose and
prove the recovery time and recovery point objectives of the policy in ``bdr.yaml``.
"""

from __future__ import annotations

__version__ = "0.1.0"
