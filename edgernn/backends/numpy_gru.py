"""The reference GRU cell in numpy: the oracle every other backend is checked against.

Gate semantics are PyTorch ``nn.GRU`` (r, z, n with the reset gate applied to ``W_hn h + b_hn``),
followed by the head shared by every backend (K Gaussians per feature, K = 1 the plain Gaussian
head; backends/base.py gives the layout of pred):

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
    z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h  =  n + z * (h - n)
    mean   = tile(x, K) + W_mean h' + b_mean   [K F] (residual: the head predicts the change)
    logvar = W_logvar h' + b_logvar            [K F]
    logit  = W_logit h' + b_logit              [K F], K > 1 only
    pred   = [mean | logvar (| logit)]         float32[B, 2F] or float32[B, 3KF]

With jump inputs (backends/base.py) x is [c | j] (2F entries): j has its own input weights W_j*
in the gate GEMM and a zero column in the head's tile (the skip connection reads c alone).

One fused GEMM computes every gate pre-activation and bias: W^T [x | h | 1]^T with the 4H rows
laid out as (r | z | input part of n | recurrent part of n); one more computes the whole head,
bias and residual means included: [W_head | b_head | tile(I_F, K) for the means] [h' | 1 | x]^T.
Both read one column per reading, v = [h' | 1 | x | h | 1] (length 2H + F + 2): the gates its
tail [x | h | 1], the head its head [h' | 1 | x]. sigmoid(a) = 0.5 * tanh(a / 2) + 0.5, so the r
and z columns are stored pre-scaled by 1/2 and need a single tanh. The arithmetic runs in float64
and the results are rounded to float32: float32 GEMMs sum in an order that depends on the batch
size, float64 makes the oracle batch-invariant (same bits for a reading alone or in a batch).
"""

from __future__ import annotations

import numpy as np

from .base import check_weights, components, has_jump, pred_width


class NumpyGRU:
    """Stateless single-step cell. Holds weights only; hidden state belongs to the caller."""

    name = "numpy"
    h_bound = 1.0  # |h| < 1 (h' = (1 - z) n + z h, n = tanh): the store keeps h as int16 Q15 (state.py)

    def __init__(self, weights: dict[str, np.ndarray]):
        F0, H = check_weights(weights)
        K = components(weights)
        self.jump = has_jump(weights)
        self.features, self.hidden, self.components = F0, H, K
        F = 2 * F0 if self.jump else F0  # x's width: [c | j] with jump inputs
        self._KF, P = K * F0, pred_width(F0, K)  # means' entries, pred's entries
        logit = ("head.W_logit", "head.b_logit") if K > 1 else ()
        w = {k: np.asarray(v, dtype=np.float32).astype(np.float64) for k, v in weights.items()}
        W = np.zeros((F + H, 4 * H), np.float64)  # [F+H, 4H]
        W[:F0, 0:H], W[F:, 0:H] = w["gru.W_ir"].T, w["gru.W_hr"].T
        W[:F0, H : 2 * H], W[F:, H : 2 * H] = w["gru.W_iz"].T, w["gru.W_hz"].T
        W[:F0, 2 * H : 3 * H] = w["gru.W_in"].T
        if self.jump:  # j's rows [F0:F]
            W[F0:F, 0:H], W[F0:F, H : 2 * H], W[F0:F, 2 * H : 3 * H] = (w[f"gru.W_j{g}"].T for g in "rzn")
        W[F:, 3 * H :] = w["gru.W_hn"].T
        b = np.concatenate([w["gru.b_ir"] + w["gru.b_hr"], w["gru.b_iz"] + w["gru.b_hz"], w["gru.b_in"], w["gru.b_hn"]])
        W[:, : 2 * H] *= 0.5  # sigmoid via tanh(a / 2): exact scaling by a power of two
        b[: 2 * H] *= 0.5
        # Stored transposed: the batch runs along the last axis, so every gate is a contiguous block
        # of rows and the elementwise work runs on contiguous memory (strided views are ~4x slower).
        # The biases ride along as one more input column that is always 1 (a broadcast add of a
        # [4H, 1] column costs more than the GEMM gains).
        self._WT = np.ascontiguousarray(np.concatenate([W.T, b[:, None]], axis=1))  # [4H, F+H+1]
        Wo = np.concatenate([w["head.W_mean"], w["head.W_logvar"], *(w[n] for n in logit[:1])])  # [P, H]
        bo = np.concatenate([w["head.b_mean"], w["head.b_logvar"], *(w[n] for n in logit[1:])])  # [P]
        tile = np.zeros((P, F))  # [P, F]: mean row k F0 + f takes x_f (the head predicts the change; j: 0)
        tile[np.arange(self._KF), np.tile(np.arange(F0), K)] = 1.0
        self._Wo = np.ascontiguousarray(np.concatenate([Wo, bo[:, None], tile], axis=1))  # [P, H+1+F]
        # batch-of-one scratch (views made once: at B = 1 numpy's per-call overhead is the cost, so
        # every operation writes in place; one Detector, one thread: not for concurrent callers)
        self._v1 = np.empty(2 * H + F + 2)  # [2H+F+2] = h' | 1 | x | h | 1
        self._v1[H] = self._v1[-1] = 1.0
        self._g1 = np.empty(4 * H)  # [4H] gate pre-activations
        self._out1 = np.empty(P)  # [P] mean | logvar (| logit)
        self._bufs: dict[int, tuple] = {}  # batch size -> scratch of step (_buffers), same caveat
        g1, v1 = self._g1, self._v1
        # the batch-of-one views: v's gates input, v's head input, g, out, v's x, v's h (overwritten
        # by h - n ...), v's h' (n, then h'), r | z [2H], r [H], z [H], the input part of n [H],
        # the recurrent part of n [H], 0.5
        self._views1 = (v1[H + 1 :], v1[: H + 1 + F], g1, self._out1, v1[H + 1 : H + 1 + F], v1[H + 1 + F : -1],
                        v1[:H], g1[: 2 * H], g1[:H], g1[H : 2 * H], g1[2 * H : 3 * H], g1[3 * H :], np.array(0.5))

    def step(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        H, F = self.hidden, self.features * (2 if self.jump else 1)  # F: x's width
        if len(x) == 1:
            return self._step_one(x, h)
        v, g, out = self._buffers(len(x))  # [2H+F+2, B] float64, batch along columns; [4H, B]; [P, B]
        v[H + 1 : H + 1 + F] = x.T
        v[H + 1 + F : -1] = h.T  # (rows H and -1: the bias inputs, 1.0)
        np.matmul(self._WT, v[H + 1 :], out=g)  # [4H, B] gate pre-activations
        rz = g[: 2 * H]  # [2H, B] (views into g, computed in place)
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5  # r | z = sigmoid
        nr = g[3 * H :]  # [H, B] recurrent part of n ...
        nr *= rz[:H]  # ... times r
        nr += g[2 * H : 3 * H]  # plus the input part
        n = v[:H]  # [H, B]
        np.tanh(nr, out=n)
        hn = v[H + 1 + F : -1]  # [H, B] h, overwritten:
        hn -= n  # h - n
        hn *= rz[H:]  # z * (h - n)
        n += hn  # h' = n + z * (h - n)
        np.matmul(self._Wo, v[: H + 1 + F], out=out)  # [P, B] the head, bias and residual means included
        return out.T.astype(np.float32), n.T.astype(np.float32)

    def _buffers(self, B: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scratch of batch size B, made once per size up to 1024 (the results are fresh arrays
        converted from them): v float64[2H+F+2, B] (h' | 1 | x | h | 1, the 1s set here), the gate
        pre-activations float64[4H, B] and the head's outputs float64[P, B]."""
        bufs = self._bufs.get(B)
        if bufs is None:
            H = self.hidden
            bufs = (np.empty((len(self._v1), B)), np.empty((4 * H, B)), np.empty((len(self._out1), B)))
            bufs[0][H] = bufs[0][-1] = 1.0
            if B <= 1024:
                self._bufs[B] = bufs
        return bufs

    def _step_one(self, x: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``step`` at B = 1 on vectors: the same operations in the same order (the same bits),
        in place on preallocated buffers and views made once (self._views1), outs positional and
        the constant an array (at B = 1 each call's argument handling is most of its cost)."""
        vg, vo, g, out, xv, hn, n, rz, r, z, n_in, nr, half = self._views1
        np.copyto(xv, x[0])
        np.copyto(hn, h[0])
        np.dot(self._WT, vg, g)  # [4H]
        np.tanh(rz, rz)
        np.multiply(rz, half, rz)
        np.add(rz, half, rz)  # r | z = sigmoid
        np.multiply(nr, r, nr)
        np.add(nr, n_in, nr)
        np.tanh(nr, n)
        np.subtract(hn, n, hn)  # h - n
        np.multiply(hn, z, hn)  # z * (h - n)
        np.add(n, hn, n)  # h' = n + z * (h - n)
        np.dot(self._Wo, vo, out)  # [P] the head, bias and residual means included
        return np.array(out, np.float32, ndmin=2), np.array(n, np.float32, ndmin=2)
