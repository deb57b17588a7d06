"""Replace the lakehouse's dashboards in Superset's metadata with a bundle's: ``python superset_import.py BUNDLE.zip USER``.

Run by the Python of Superset's own virtual environment (``lakehouse.dashboards``
starts it), so it imports nothing of the lakehouse. Superset's dashboard import
overwrites the dashboards but keeps any chart, dataset or database that already
exists (``overwrite=False`` for them inside the command): a chart changed in
``dashboards/*.yaml``, or a SQL server moved to another port, would never reach
Superset. So the objects of the bundle are deleted by their UUIDs first, then the
bundle is imported whole, in one transaction each.
"""

from __future__ import annotations

import sys
from zipfile import ZipFile


def main(bundle_path: str, username: str) -> None:
    from superset.app import create_app

    app = create_app()
    with app.app_context():
        import yaml
        from flask import g
        from superset import db, security_manager
        from superset.commands.dashboard.importers.dispatcher import ImportDashboardsCommand
        from superset.commands.importers.v1.utils import get_contents_from_bundle
        from superset.connectors.sqla.models import SqlaTable
        from superset.models.core import Database
        from superset.models.dashboard import Dashboard
        from superset.models.slice import Slice

        g.user = security_manager.find_user(username=username)
        with ZipFile(bundle_path) as bundle:
            contents = get_contents_from_bundle(bundle)
        uuids: dict[str, set[str]] = {"dashboards": set(), "charts": set(), "datasets": set(), "databases": set()}
        for name, text in contents.items():
            kind = name.split("/")[0]
            if kind in uuids:
                uuids[kind].add(yaml.safe_load(text)["uuid"])
        # Dependents first: a dashboard holds charts, a chart a dataset, a dataset a database.
        for model, kind in ((Dashboard, "dashboards"), (Slice, "charts"), (SqlaTable, "datasets"), (Database, "databases")):
            for obj in db.session.query(model).filter(model.uuid.in_(uuids[kind])).all():
                db.session.delete(obj)
        db.session.commit()
        ImportDashboardsCommand(contents, overwrite=True).run()
        db.session.commit()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
