"""TEMPORARY (replaced at merge by the metrics package of branch wt-c)."""
