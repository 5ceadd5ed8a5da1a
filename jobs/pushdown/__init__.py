"""SQL push-down: a SQL source's day states computed by GROUP BY in the source database.

Histogram counts on the reference's cell edges, category counts and moments travel, with the
calibrated sums grouped by calibrator cell and each day's top-k confident outliers (scored in
SQL); rows do not, except a bounded sample, a bounded sample of rejected rows, and the
labelled rows a label-dependent finding asks for by id. See :mod:`jobs.pushdown.sql` for the queries and
:mod:`jobs.pushdown.engine` for how their answers become the same states as the local path.
"""
