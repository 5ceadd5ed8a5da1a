"""The check job: windows of prediction logs against the reference of the version that made them.

``job`` runs it; ``frames`` turns stored rows into frames, ``reference`` builds and loads the
reference sets, ``findings`` gathers the absurd-confidence findings, ``policy`` decides whether
a window is worth a retrain.
"""
