"""Measuring a generator: FID/KID against real images with a real-vs-real floor, and R-precision."""
