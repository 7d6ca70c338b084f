"""The bench's anchor: a bare Django + DRF project serving one endpoint on the portal's database.

``bench/api_throughput.py`` serves it with the same gunicorn settings as the portal and loads it
in turns with the portal's API endpoints: the distance to it is what the portal's own work costs.
"""
