"""Offline trainer (pip install edgernn[train]): windows, torch model, fit, calibrate, bundle."""
