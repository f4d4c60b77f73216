"""The ganbert library's user-facing error: one line that a caller can show as it is."""


class GanBertError(ValueError):
    """Bad input to GAN-BERT (a data file, a label set, a backbone folder, a checkpoint)."""
