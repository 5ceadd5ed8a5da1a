"""The weekly report job: reads stored runs and hands them to :mod:`reports` to render."""
