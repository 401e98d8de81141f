"""Publishes one sensor's readings with a spike to a broker and waits for edgernn's alert on it.

    python proof_traffic.py [--host 127.0.0.1] [--port 1883] [--topic plant/line1/temp]

Used by prove-systemd.sh inside the container (runs with the edgernn venv's paho-mqtt). Readings are
a slow sine plus noise, one per 10 s of timestamp, ending now; the spike is reading SPIKE_AT
(after the model's warm-up). Exit 0 when an alert is raised for the stream at the spike's timestamp.
"""

import argparse
import json
import math
import random
import sys
import time

import paho.mqtt.client as mqtt

N, SPIKE_AT, PERIOD_S = 500, 420, 10.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--topic", default="plant/line1/temp")
    ap.add_argument("--wait", type=float, default=60.0, help="seconds to wait for the alert")
    a = ap.parse_args()
    alerts = []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"proof-{random.randrange(1 << 30)}")
    c.on_message = lambda _c, _u, m: alerts.append((m.topic, json.loads(m.payload)))
    c.connect(a.host, a.port)
    c.subscribe("edgernn/+/alerts/#", qos=1)
    c.loop_start()
    rng = random.Random(0)
    t0 = time.time() - N * PERIOD_S
    spike_ts = t0 + SPIKE_AT * PERIOD_S
    for k in range(N):  # 20 +- 2 degrees over ~100 readings, noise 0.05; the spike is +8
        v = 20 + 2 * math.sin(2 * math.pi * k / 100) + rng.gauss(0, 0.05) + (8.0 if k == SPIKE_AT else 0.0)
        c.publish(a.topic, json.dumps({"ts": t0 + k * PERIOD_S, "value": round(v, 4)}), qos=1).wait_for_publish(5)
    print(f"published {N} readings to {a.topic}; spike +8 at reading {SPIKE_AT} (ts {spike_ts:.0f})")
    deadline = time.time() + a.wait
    while time.time() < deadline and not any(abs(p.get("ts", 0) - spike_ts) < 1 for _, p in alerts):
        time.sleep(0.2)
    c.loop_stop()
    for topic, p in alerts:
        print(f"alert on {topic}: event {p.get('event')} ts {p.get('ts')} "
              f"{'(the spike)' if abs(p.get('ts', 0) - spike_ts) < 1 else ''}")
    hit = any(abs(p.get("ts", 0) - spike_ts) < 1 and p.get("event") in ("raised", "update") for _, p in alerts)
    print("spike alert:", "yes" if hit else "NO")
    return 0 if hit else 1


if __name__ == "__main__":
    sys.exit(main())
