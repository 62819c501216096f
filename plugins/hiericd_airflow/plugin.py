"""The ``AirflowPlugin`` that the ``airflow.plugins`` entry point (``setup.cfg``) names."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hiericd_airflow.page import URL_PREFIX, create_app


class HiericdPlugin(AirflowPlugin):
    """The rounds page: rounds, kappa, pending adjudications, report and Data Docs links, champion vs challenger."""

    name = "hiericd"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "hiericd rounds"}]
    external_views = [{
        "name": "hiericd rounds",
        "href": f"{URL_PREFIX.lstrip('/')}/",  # relative: the UI resolves it under its base URL
        "url_route": "hiericd",
        "destination": "nav",
        "category": "browse",
    }]
