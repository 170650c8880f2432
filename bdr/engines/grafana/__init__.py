"""The Grafana engine: dashboards, folders, data sources and alert rules in grafana.db, plus provisioning.

Grafana keeps what its users made in one SQLite database (``grafana.db``) and what its
operators wrote in provisioning files and grafana.ini. A backup takes the database through
SQLite's online backup API (a consistent copy while Grafana writes, never ``cp``), runs
``PRAGMA integrity_check`` on the copy (a corrupt source is refused), and stores it with
grafana.ini and the provisioning directory in the set's encrypted ``secrets.tar.zst``
(they hold the data sources' secrets, ``secret_key``, the admin password; a set is refused
without a key, as configuration secrets are). The manifest records what an operator checks:
the dashboards (uid, title, folder, version), the folders, the data sources by name only,
the alert rule count, Grafana's migration count. With ``url`` and a token every dashboard
is also exported as JSON through the HTTP API, so one dashboard can be restored without
replacing the database.

Modules: :mod:`.database` (online copy, integrity, inventory), :mod:`.api` (the HTTP API),
:mod:`.engine` (the ``Engine``: backup, verify), :mod:`.restore` (the database swap and the
single-dashboard import, through the runbook).
"""

from __future__ import annotations

from bdr.engines.grafana.engine import ENGINE, GrafanaEngine

__all__ = ["ENGINE", "GrafanaEngine"]
