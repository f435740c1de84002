"""The benchmark: a fresh process per job, power sources, the results document and the report."""
