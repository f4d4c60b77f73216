"""Seeds made of several integers (seed, epoch, rank, ...), for the data order and the trainer's
augmentation draws alike: one spelled-out mix, so a run's draws do not depend on Python's hash."""


def mixed_seed(*parts: int) -> int:
    """One seed from several integers: a fixed polynomial mix, below 2**63 - 1 (torch's limit)."""
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part) + 1) % (2**63 - 1)
    return seed
