"""edgernn: a stateful, single-step GRU runtime for anomaly detection on sensor streams.

Importing this package loads no inference runtime and no MQTT client; those are imported lazily
by the backends and by ``edgernn.mqtt`` when they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "load_bundle", "Detector", "Reading"]


def __getattr__(name):  # lazy public API: no heavy imports at package import time
    if name == "load_bundle":
        from .bundle import load_bundle

        return load_bundle
    if name == "Detector":
        from .detector import Detector

        return Detector
    if name == "Reading":
        from .detector import Reading

        return Reading
    raise AttributeError(name)
