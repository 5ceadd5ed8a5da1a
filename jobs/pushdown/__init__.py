"""SQL push-down: a SQL source's day states computed by GROUP BY in the source database.

Histogram counts on the reference's cell edges, category counts and moments travel; rows do
not, except the few a finding needs (the confident candidates of the outlier heap, a bounded
sample, a bounded sample of rejected rows). See :mod:`jobs.pushdown.sql` for the queries and
:mod:`jobs.pushdown.engine` for how their answers become the same states as the local path.
"""
