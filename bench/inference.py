"""Inference speed: ``model.predict`` (fastnn's compiled forward pass, numba and cython backends) against
PyTorch (``torch.inference_mode``, the same network as ``nn.Sequential``) and ONNX Runtime (the file
``fastnn.export_onnx`` writes), float32, 784-100-10 and 784-512-512-10 (ReLU, softmax output), for one row
(latency) and 10,000 rows (throughput); every library on the same number of threads (default 2).

Each measurement is the best of ``--repeats`` runs, each the mean of many calls (one row) or one call
(10,000 rows); the implementations of a configuration are measured round-robin in the same run, so the
ratios compare calls made side by side. Run from the repository root:
``.venv/bin/python bench/inference.py [--threads 2] [--json out.json]``. Peers missing (the ``bench`` and
``onnx`` extras) are left out with the reason. Prints a markdown table with the ratios the targets use
(issue 13): one row, fastnn's latency over PyTorch's (target <= 0.25) and over ONNX Runtime's (<= 0.5);
10,000 rows, fastnn's throughput over PyTorch's (>= 1.3).
"""
import argparse
import json
import os
import tempfile
import time

import numpy as np

NETWORKS = {"784-100-10": (784, 100, 10), "784-512-512-10": (784, 512, 512, 10)}
ROWS = (1, 10_000)


def fastnn_model(sizes, backend):
    import fastnn
    from fastnn import layers

    stack = []
    for i in range(len(sizes) - 1):
        stack.append(layers.Dense(sizes[i], sizes[i + 1]))
        stack.append(layers.ReLU() if i < len(sizes) - 2 else layers.Softmax())
    return fastnn.Sequential(stack, dtype="float32", backend=backend, seed=0)


def torch_model(model):
    """A torch nn.Sequential with the fastnn model's weights."""
    import torch

    mods = []
    for layer in model.layers:
        name = type(layer).__name__
        if name == "Dense":
            lin = torch.nn.Linear(layer.n_in, layer.n_out)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(layer.W.T.copy()))
                lin.bias.copy_(torch.from_numpy(layer.b.copy()))
            mods.append(lin)
        else:
            mods.append(torch.nn.ReLU() if name == "ReLU" else torch.nn.Softmax(dim=1))
    return torch.nn.Sequential(*mods).eval()


def callers(sizes, threads):
    """{name: (predict(X) -> array, why-not or None)} for every implementation."""
    import fastnn

    out = {}
    model = fastnn_model(sizes, "cython")
    for backend in ("numba", "cython"):
        m = fastnn_model(sizes, backend)
        m.set_weights(model.get_weights())
        out[f"fastnn-{backend}"] = (m.predict, None)
    try:
        import torch

        torch.set_num_threads(threads)
        net = torch_model(model)

        def run_torch(X, net=net):
            with torch.inference_mode():
                return net(torch.from_numpy(X)).numpy()
        out["torch"] = (run_torch, None)
    except ImportError as exc:
        out["torch"] = (None, f"torch not installed ({exc}; bench extra)")
    try:
        import onnxruntime

        path = os.path.join(tempfile.mkdtemp(prefix="fastnn-bench-"), "model.onnx")
        fastnn.export_onnx(model, path)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        out["onnxruntime"] = (lambda X, s=session: s.run(None, {"input": X})[0], None)
    except ImportError as exc:
        out["onnxruntime"] = (None, f"onnxruntime not installed ({exc}; onnx extra)")
    return out


def seconds_per_call(fn, X, repeats):
    """Best over ``repeats`` of the mean time of a call (many calls per repeat when a call is short)."""
    fn(X)
    t0 = time.perf_counter()
    fn(X)
    once = time.perf_counter() - t0
    calls = max(1, int(0.05 / max(once, 1e-7)))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn(X)
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def measure(threads=2, repeats=20):
    import fastnn

    fastnn.set_num_threads(threads)
    rng = np.random.default_rng(0)
    results, reasons = {}, {}
    for net, sizes in NETWORKS.items():
        impls = callers(sizes, threads)
        reasons.update({name: why for name, (fn, why) in impls.items() if fn is None})
        for rows in ROWS:
            X = rng.random((rows, sizes[0])).astype(np.float32)
            expected = impls["fastnn-numba"][0](X)
            cell = {}
            for _ in range(3):  # round-robin, best kept
                for name, (fn, _) in impls.items():
                    if fn is None:
                        continue
                    np.testing.assert_allclose(fn(X), expected, rtol=1e-4, atol=1e-6)  # the same predictions
                    t = seconds_per_call(fn, X, max(1, repeats // 3))
                    cell[name] = min(cell.get(name, float("inf")), t)
            results[f"{net} x {rows}"] = cell
    return results, reasons


def table(results):
    names = sorted({n for cell in results.values() for n in cell})
    lines = ["| configuration | " + " | ".join(names) + " | fastnn / torch | fastnn / onnxruntime |",
             "|---|" + "---|" * (len(names) + 2)]
    for config, cell in results.items():
        best = min(t for n, t in cell.items() if n.startswith("fastnn"))
        rows = int(config.split(" x ")[1])
        fmt = (lambda t: f"{t * 1e6:.1f} us") if rows == 1 else (lambda t: f"{t * 1e3:.2f} ms")
        ratio = []
        for peer in ("torch", "onnxruntime"):
            if peer in cell:  # latency: fastnn's time over the peer's; throughput: the peer's time over fastnn's
                ratio.append(f"{best / cell[peer]:.2f}x time" if rows == 1 else f"{cell[peer] / best:.2f}x throughput")
            else:
                ratio.append("–")
        lines.append(f"| {config} | " + " | ".join(fmt(cell[n]) if n in cell else "–" for n in names)
                     + " | " + " | ".join(ratio) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    results, reasons = measure(args.threads, args.repeats)
    print(f"float32, {args.threads} threads; best of {args.repeats} repeats, implementations round-robin\n")
    print(table(results))
    for name, why in reasons.items():
        print(f"\n{name} left out: {why}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": args.threads, "results": results, "left_out": reasons}, f, indent=1)


if __name__ == "__main__":
    main()
