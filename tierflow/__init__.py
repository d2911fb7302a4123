"""tierflow's core: models, filters, DAG planning, catalog, storage and extractors.

Plain Python: nothing here imports Prefect, the flows, the tasks or any face (CLI, deployments).
"""

__version__ = "0.1.0"
