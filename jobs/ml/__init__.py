"""The TensorFlow side of driftkeeper: demo data, the CNN, retraining, TFLite export, simulator.

Importing this package (or :mod:`jobs.demo.digits`, :mod:`jobs.ml.image_features`) never imports
TensorFlow, so the monitoring side works without the ``ml`` extra. The modules that need it
(:mod:`jobs.ml.cnn`, :mod:`jobs.ml.train`, :mod:`jobs.ml.export`, and
:meth:`jobs.demo.simulator.ProductionSimulator.simulate_week`) import it inside their functions.

Modules:

- ``digits``: scikit-learn digits as 32x32 images, deterministic splits, drift transforms.
- ``image_features``: cheap per-image properties a phone can compute.
- ``cnn``: the small MobileNet-flavoured classifier, training, save/load, predictions + embeddings.
- ``train``: head / full retraining from a champion, teacher pseudo-labels, custom trainers, evaluation.
- ``export``: SavedModel + TFLite (float32, dynamic-range, int8) with verification and manifest.
- ``simulator``: the production simulator (the mobile app's backend) writing logs and late labels.
"""
