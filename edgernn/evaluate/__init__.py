"""Detection-quality evaluation: NAB and SKAB protocols, event-wise metrics, plots.

    nab.py      the NAB scorer (windows, scaled sigmoid, profiles, normalisation, threshold sweep)
    skab.py     SKAB loader and protocol (first 400 rows train, point-wise F1 / FAR / MAR)
    events.py   event-wise precision / recall / F1 / detection delay + the labels file format
    run.py      drives the Detector over a recording, causally, and collects per-row outputs
    plots.py    per-file figure: values, likelihood, alerts, labelled windows (matplotlib, lazy)

The scorers are pure functions of arrays: they never import the detector, a backend or matplotlib.
"""
