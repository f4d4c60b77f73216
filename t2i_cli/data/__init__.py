"""Caption-image data: HDF5 files (``h5``), folder readers (``sources``), conversion and
re-embedding (``convert``), and the training ``Dataset`` (``dataset``, which needs torch)."""
