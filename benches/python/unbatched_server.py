"""A Python model server with no batching at all, the way many are written:
FastAPI and uvicorn, PIL for the image, onnxruntime's own session, one
request at a time on the event loop. The peer for scripts/batch-of-one.sh:
at one client, the batching server must answer at least as many requests
per second as this one.

    python3 unbatched_server.py MODEL LABELS PORT THREADS
"""

import sys

import numpy as np
import onnxruntime
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from imagenet_input import prepare

model, labels_path, port, threads = sys.argv[1:5]
options = onnxruntime.SessionOptions()
options.intra_op_num_threads = int(threads)
session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
labels = open(labels_path).read().splitlines()
app = FastAPI()


@app.post("/v1/classify")
async def classify(request: Request):
    logits = session.run(None, {input_name: prepare(await request.body())})[0][0]
    exp = np.exp(logits - logits.max())
    probabilities = exp / exp.sum()
    top = np.argsort(-probabilities)[:5]
    return {
        "predictions": [
            {"class": int(i), "label": labels[i], "probability": float(probabilities[i])}
            for i in top
        ]
    }


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.get("/metrics")
async def metrics():
    # No batches to count.
    return PlainTextResponse("")


uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")
