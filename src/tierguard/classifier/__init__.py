"""tierguard.classifier: the query-tier classifier.

* ``runtime``: what the router imports (numpy + onnxruntime only): the model contract,
  ``load_classifier``, the tier rule.
* ``dataset``: the deterministic support-query generator (seed 003's categories), also
  used by the lab's simulated traffic.
* ``data``, ``evaluation``, ``calibration``: pure helpers for labelled files, misroute
  reports and threshold choice.
* ``train``, ``default_model``, ``cli_train``, ``cli_calibrate``: training and export
  (need the ``train`` extra: scikit-learn, skl2onnx, onnx).

Nothing is imported here, so ``import tierguard.classifier.runtime`` stays light.
See docs/classifier.md.
"""
