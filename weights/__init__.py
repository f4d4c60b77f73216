"""The shipped weights (see README.md and MANIFEST.json here). In the repository this is the
top-level ``weights/`` folder; a built wheel installs it as the ``t2i_weights`` package, so a
plain ``pip install`` finds the weights too (``t2i_cli.weights.WEIGHTS_DIR``)."""
