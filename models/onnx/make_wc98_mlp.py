"""Trains the small per-series forecaster `wc98-mlp.onnx` on WorldCup98 and exports it as ONNX.

The model follows graphscale's ONNX contract (docs/forecast.md, "ONNX models"):
  input  `window`   float32 [1, 24]  the newest 24 raw values, oldest first
  output `forecast` float32 [1, 8]   the next 8 values (point forecasts)
Normalisation is inside the graph: the window is divided by its mean (plus 1), the network
(24 -> 32 -> 8, ReLU) forecasts the change from the newest value in that scale, and the
output is scaled back, added to the newest value and clipped at 0.

Training data: the per-minute WorldCup98 counts of 1998-06-01 to 1998-06-29 (UTC) from
shared/data/worldcup98/worldcup98_requests_per_minute.csv; 1998-06-30, the day graphscale
bundles in data/worldcup98/, is held out. It also writes `wc98-mlp.reference.json`: windows
cut from the held-out day and PyTorch's outputs for them, which graphscale's test compares
with its own run of the ONNX file (tract).

With a third argument it also writes the malformed models graphscale's tests must reject
(a dynamic batch axis, two inputs, an int64 input, a [2, 8] output, an output that is NaN) into
that folder.

Usage (CPU PyTorch and onnx):
  python3 -m venv V && V/bin/pip install torch onnx onnxscript \
      --index-url https://download.pytorch.org/whl/cpu --extra-index-url https://pypi.org/simple
  V/bin/python models/onnx/make_wc98_mlp.py ../shared/data/worldcup98/worldcup98_requests_per_minute.csv \
      models/onnx crates/forecast/tests/data/onnx
"""

import csv
import json
import os
import sys

import torch

WINDOW = 24
HORIZON = 8
HIDDEN = 32
SEED = 7
EPOCHS = 20


class Mlp(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = torch.nn.Linear(WINDOW, HIDDEN)
        self.out = torch.nn.Linear(HIDDEN, HORIZON)
        # It starts as persistence and learns the change from the newest value.
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, window):
        scale = window.mean(dim=1, keepdim=True) + 1.0
        h = torch.relu(self.hidden(window / scale))
        return torch.relu(window[:, -1:] + self.out(h) * scale)


def read(path):
    train, held = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            day = row["time_utc"][:10]
            if "1998-06-01" <= day <= "1998-06-29":
                train.append(float(row["requests"]))
            elif day == "1998-06-30":
                held.append(float(row["requests"]))
    if len(train) < 10_000 or len(held) != 1440:
        sys.exit(f"{path}: expected June 1998 per-minute rows, found {len(train)} + {len(held)}")
    return train, held


def windows(series):
    x, y = [], []
    for i in range(0, len(series) - WINDOW - HORIZON + 1):
        x.append(series[i : i + WINDOW])
        y.append(series[i + WINDOW : i + WINDOW + HORIZON])
    return torch.tensor(x), torch.tensor(y)


class TwoInputs(torch.nn.Module):
    def forward(self, a, b):
        return a + b


class IntInput(torch.nn.Module):
    def forward(self, x):
        return x.float() * 2.0


class Wide(torch.nn.Module):
    def forward(self, x):
        return torch.cat([x[:, :8], x[:, 8:16]], dim=0)


class NotFinite(torch.nn.Module):
    def forward(self, x):
        return torch.log(x[:, :8] - 1.0e9)


def export(model, args, path, **kw):
    torch.onnx.export(model, args, path, opset_version=18, dynamo=False, **kw)


def fixtures(model, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    w = torch.zeros(1, WINDOW)
    export(
        model,
        (w,),
        os.path.join(out_dir, "dynamic-batch.onnx"),
        input_names=["window"],
        output_names=["forecast"],
        dynamic_axes={"window": {0: "batch"}, "forecast": {0: "batch"}},
    )
    export(TwoInputs(), (w, w), os.path.join(out_dir, "two-inputs.onnx"))
    export(IntInput(), (torch.zeros(1, WINDOW, dtype=torch.int64),), os.path.join(out_dir, "int-input.onnx"))
    export(Wide(), (w,), os.path.join(out_dir, "wide-output.onnx"))
    export(NotFinite(), (w,), os.path.join(out_dir, "not-finite.onnx"))
    print(f"wrote the malformed models in {out_dir}")


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: make_wc98_mlp.py WORLDCUP98_CSV OUT_DIR [FIXTURES_DIR]")
    src, out_dir = sys.argv[1], sys.argv[2]
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    train, held = read(src)
    x, y = windows(train)
    model = Mlp()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(EPOCHS):
        perm = torch.randperm(len(x))
        total = 0.0
        for b in range(0, len(x), 256):
            idx = perm[b : b + 256]
            xb, yb = x[idx], y[idx]
            scale = xb.mean(dim=1, keepdim=True) + 1.0
            # Loss in the window's scale, so busy and quiet hours weigh alike.
            loss = torch.nn.functional.mse_loss(model(xb) / scale, yb / scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}: mean scaled squared error {total / len(x):.4f}")
    model.eval()
    hx, hy = windows(held)
    with torch.no_grad():
        err = (model(hx) - hy).abs().mean().item()
        naive = (hx[:, -1:] - hy).abs().mean().item()
    print(f"held-out 1998-06-30: MAE {err:.1f} requests/min, persistence {naive:.1f}")
    onnx_path = os.path.join(out_dir, "wc98-mlp.onnx")
    torch.onnx.export(
        model,
        (torch.zeros(1, WINDOW),),
        onnx_path,
        input_names=["window"],
        output_names=["forecast"],
        opset_version=18,
        dynamo=False,
    )
    picks = [0, 300, 600, 900, 1200, len(hx) - 1]
    refs = []
    with torch.no_grad():
        for i in picks:
            w = hx[i : i + 1]
            refs.append({"window": w[0].tolist(), "forecast": model(w)[0].tolist()})
    with open(os.path.join(out_dir, "wc98-mlp.reference.json"), "w") as f:
        json.dump(
            {
                "model": "wc98-mlp.onnx",
                "torch": torch.__version__,
                "window": WINDOW,
                "horizon": HORIZON,
                "held_out_mae": err,
                "held_out_persistence_mae": naive,
                "cases": refs,
            },
            f,
            indent=1,
        )
        f.write("\n")
    print(f"wrote {onnx_path} ({os.path.getsize(onnx_path)} bytes)")
    if len(sys.argv) == 4:
        fixtures(model, sys.argv[3])


if __name__ == "__main__":
    main()
