"""hiericd's Airflow UI plugin: a "hiericd rounds" page in the Airflow 3 navigation.

Registered through the ``airflow.plugins`` entry point (``setup.cfg``), which
names :class:`hiericd_airflow.plugin.HiericdPlugin`. The
page is a small FastAPI app (:func:`hiericd_airflow.page.create_app`) mounted
by the Airflow API server under ``/hiericd``; an external view embeds it in the
UI. It asks for the Airflow login like the rest of the UI. Nothing heavy is
imported here: Airflow loads plugins in every one of its processes.
"""
