"""The one offline driver: both feeds give each stream the outputs it gets alone, one reading at a
time; event positions are feed rows; a reader's recording order is kept."""

from __future__ import annotations

import numpy as np

from edgernn.alerts import RAISED
from edgernn.bundle import load_bundle
from edgernn.detector import Batch, Detector
from edgernn.drive import Feed, drive

from unit_helpers import sine_series


def _recordings():
    recs = []
    for k, n in enumerate((300, 170, 1)):  # unequal lengths, one of a single reading
        x = sine_series(n, seed=k)
        if n > 200:
            x[200] += 40.0  # a spike: an event to place
        recs.append((f"s{k}", 1000.0 + np.arange(n, dtype=np.float64), x))
    return recs


def _alone(bundle, stream, ts, x):
    det = Detector(bundle)
    outs = [det.process(Batch([stream], ts[i:i + 1], x[i:i + 1])) for i in range(len(ts))]
    return np.array([o.likelihood[0] for o in outs]), np.array([o.event[0] for o in outs])


def test_from_recordings_equals_each_stream_alone(tiny_bundle):
    bundle = load_bundle(tiny_bundle(F=1, H=8, warmup=16))
    recs = _recordings()
    feed = Feed.from_recordings(recs, chunk=64)
    assert sorted(np.concatenate(feed.rows_of).tolist()) == list(range(len(feed)))
    out = drive(Detector(bundle), feed, progress=False)
    for (stream, ts, x), rows in zip(recs, feed.rows_of):
        lik, ev = _alone(bundle, stream, ts, x)
        np.testing.assert_array_equal(out.likelihood[rows], lik)
        np.testing.assert_array_equal(out.event[rows], ev)
        assert [feed.streams[r] for r in rows] == [stream] * len(ts)
    assert (out.event[[e.position for e in out.events if e.kind == "raised"]] == RAISED).all()
    assert any(e.kind == "raised" for e in out.events)


def test_arrival_order_feed_matches_per_stream_feed(tiny_bundle):
    bundle = load_bundle(tiny_bundle(F=1, H=8, warmup=16))
    recs = _recordings()[:2]
    # interleave the two streams row by row, as a multi-stream file would hold them
    rows = sorted((ts[i], k, i) for k, (_, ts, _) in enumerate(recs) for i in range(len(ts)))
    streams = [recs[k][0] for _, k, _ in rows]
    ts = np.array([t for t, _, _ in rows])
    x = np.stack([recs[k][2][i] for _, k, i in rows])
    arrival = drive(Detector(bundle), Feed.in_arrival_order(streams, ts, x, chunk=7), progress=False)
    feed = Feed.from_recordings(recs, chunk=64)
    per_stream = drive(Detector(bundle), feed, progress=False)
    for k, (stream, _, _) in enumerate(recs):
        mine = np.array([s == stream for s in streams])
        np.testing.assert_array_equal(arrival.score[mine], per_stream.score[feed.rows_of[k]])
    assert [e.position for e in arrival.events] == sorted(e.position for e in arrival.events)
    for e in arrival.events:
        assert streams[e.position] == e.stream


def test_empty_feed():
    feed = Feed.from_recordings([], chunk=4)
    assert len(feed) == 0 and feed.cuts == []
