"""The KServe Python SDK's REST and gRPC clients against our server:
health, readiness, and MobileNetV2 on a random image as JSON and binary
tensors (raw and typed contents over gRPC), which must all agree, and a
request for an unknown model that must fail.

    python3 kserve_client.py HOST:PORT GRPC_HOST:PORT
"""

import asyncio
import sys

import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


async def main():
    base = "http://" + sys.argv[1]
    client = InferenceRESTClient(RESTConfig(protocol="v2"))
    assert await client.is_server_live(base)
    assert await client.is_server_ready(base)
    assert await client.is_model_ready(base, "mobilenet")
    image = np.random.default_rng(7).random((1, 3, 224, 224), dtype=np.float32)
    answers = []
    for binary in (False, True):
        tensor = InferInput("input", [1, 3, 224, 224], "FP32")
        tensor.set_data_from_numpy(image, binary_data=binary)
        request = InferRequest(model_name="mobilenet", infer_inputs=[tensor])
        response = await client.infer(base, request, model_name="mobilenet")
        answers.append(response.outputs[0].as_numpy())
    assert answers[0].shape == (1, 1000), answers[0].shape
    assert np.allclose(answers[0], answers[1], atol=1e-4), "JSON and binary answers disagree"
    try:
        tensor = InferInput("input", [1, 3, 224, 224], "FP32")
        tensor.set_data_from_numpy(image)
        await client.infer(base, InferRequest(model_name="resnet", infer_inputs=[tensor]), model_name="resnet")
    except Exception as error:  # the SDK raises its own HTTP error types
        assert "400" in str(error) or "resnet" in str(error), error
    else:
        raise AssertionError("an unknown model was accepted")
    await client.close()

    grpc = InferenceGRPCClient(sys.argv[2])
    assert await grpc.is_server_live()
    assert await grpc.is_server_ready()
    assert await grpc.is_model_ready("mobilenet")
    for binary in (True, False):
        tensor = InferInput("input", [1, 3, 224, 224], "FP32")
        tensor.set_data_from_numpy(image, binary_data=binary)
        response = await grpc.infer(InferRequest(model_name="mobilenet", infer_inputs=[tensor]))
        got = response.outputs[0].as_numpy()
        assert np.allclose(got, answers[0], atol=1e-4), f"gRPC (binary={binary}) disagrees with REST"
    await grpc.close()
    print("kserve client: ok")


if __name__ == "__main__":
    asyncio.run(main())
