"""A real Open Inference Protocol client against our server: NVIDIA's
tritonclient[http] classifies cat.jpg with MobileNetV2, with binary and
JSON tensors, then checks that concurrent requests (which the server
batches together) and a batch of four give the same outputs as single
requests, that bad requests fail with 400, and that Triton's model
configuration, statistics, repository index, compressed bodies, priority
and classification work as tritonclient uses them.

    python3 oip_client.py HOST:PORT PATH/TO/cat.jpg GRPC_HOST:PORT

Then tritonclient[grpc] does the same over gRPC against the same model:
health, metadata, configuration, statistics, index, the cat, a batch,
concurrent requests, a class_count, and bad requests (INVALID_ARGUMENT).
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from PIL import Image
from tritonclient.utils import InferenceServerException

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def preprocess(path, brightness=1.0):
    """ImageNet pre-processing: short side to 256, centre crop 224, NCHW."""
    image = Image.open(path).convert("RGB")
    scale = 256 / min(image.size)
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    pixels = np.asarray(image, dtype=np.float32) / 255.0 * brightness
    return ((pixels - MEAN) / STD).transpose(2, 0, 1)[np.newaxis].astype(np.float32)


def request(batch, binary):
    tensor = httpclient.InferInput("input", list(batch.shape), "FP32")
    tensor.set_data_from_numpy(batch, binary_data=binary)
    return [tensor], [httpclient.InferRequestedOutput("output", binary_data=binary)]


def infer(client, batch, binary=True):
    inputs, outputs = request(batch, binary)
    return client.infer("mobilenet", inputs, outputs=outputs).as_numpy("output")


def main():
    url, photo = sys.argv[1], sys.argv[2]
    client = httpclient.InferenceServerClient(url, concurrency=8)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mobilenet")
    metadata = client.get_model_metadata("mobilenet")
    assert metadata["inputs"][0]["name"] == "input", metadata
    assert metadata["inputs"][0]["shape"] == [-1, 3, 224, 224], metadata

    cat = preprocess(photo)
    binary = infer(client, cat, binary=True)
    as_json = infer(client, cat, binary=False)
    assert binary.shape == (1, 1000), binary.shape
    top = int(binary[0].argmax())
    assert 281 <= top <= 285, f"class {top} is not a cat"
    assert np.allclose(binary, as_json, atol=1e-4), "binary and JSON tensors disagree"
    print(f"cat.jpg: class {top}")

    # Eight images of different brightness, single requests first.
    images = [preprocess(photo, brightness=0.5 + 0.0625 * i) for i in range(8)]
    singles = [infer(client, image) for image in images]
    # Then all at once from concurrent requests, twice over: the server
    # batches them together, and each must get its own row back.
    pending = []
    for _ in range(2):
        for image in images:
            inputs, outputs = request(image, True)
            pending.append(client.async_infer("mobilenet", inputs, outputs=outputs))
    for i, call in enumerate(pending):
        got = call.get_result().as_numpy("output")
        assert np.allclose(got, singles[i % 8], atol=1e-3), f"concurrent request {i} got another row"
    # One request carrying a batch of four.
    four = infer(client, np.concatenate(images[:4]))
    assert four.shape == (4, 1000)
    assert np.allclose(four, np.concatenate(singles[:4]), atol=1e-3), "a batch of four disagrees with singles"

    # Bad requests fail with 400, and the server still answers afterwards.
    for name, batch in [("wrong shape", np.zeros((1, 3, 224, 223), np.float32))]:
        try:
            infer(client, batch)
        except InferenceServerException as error:
            assert error.status() == "400", (name, error.status(), error)
        else:
            raise AssertionError(f"{name} was accepted")
    wrong_type = httpclient.InferInput("input", [1, 3, 224, 224], "INT64")
    wrong_type.set_data_from_numpy(np.zeros((1, 3, 224, 224), np.int64))
    try:
        client.infer("mobilenet", [wrong_type])
    except InferenceServerException as error:
        assert error.status() == "400", error
    else:
        raise AssertionError("a wrong datatype was accepted")
    try:
        client.infer("resnet", request(cat, True)[0])
    except InferenceServerException as error:
        assert error.status() == "400", error
    else:
        raise AssertionError("an unknown model was accepted")
    assert int(infer(client, cat)[0].argmax()) == top

    # Triton's additions, as tritonclient and perf_analyzer read them.
    config = client.get_model_config("mobilenet")
    assert config["max_batch_size"] >= 1, config
    assert config["input"][0]["dims"] == [3, 224, 224], config
    assert config["input"][0]["data_type"] == "TYPE_FP32", config
    stats = client.get_inference_statistics("mobilenet")["model_stats"][0]
    assert int(stats["inference_count"]) > 0, stats
    assert int(stats["inference_stats"]["success"]["count"]) > 0, stats
    index = client.get_model_repository_index()
    assert "mobilenet" in [m["name"] for m in index], index
    # Compressed bodies, a priority, and the classification extension.
    for algorithm in ["gzip", "deflate"]:
        inputs, outputs = request(cat, True)
        got = client.infer("mobilenet", inputs, outputs=outputs,
                           request_compression_algorithm=algorithm, priority=1).as_numpy("output")
        assert np.allclose(got, binary, atol=1e-4), algorithm
    inputs, _ = request(cat, True)
    classes = client.infer("mobilenet", inputs, outputs=[
        httpclient.InferRequestedOutput("output", binary_data=True, class_count=5)]).as_numpy("output")
    assert classes.shape == (1, 5), classes.shape
    score, index = classes[0][0].decode().split(":")[:2]
    assert int(index) == top, classes
    assert abs(float(score) - binary[0][top]) < 1e-3, classes
    print(f"classification: {classes[0][0].decode()}")
    client.close()
    grpc(sys.argv[3], cat, binary, top, images, singles)
    print("oip client: ok")


def grpc(url, cat, expected, top, images, singles):
    """The same over gRPC: the answers must equal the HTTP ones."""
    client = grpcclient.InferenceServerClient(url)
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("mobilenet")
    metadata = client.get_model_metadata("mobilenet", as_json=True)
    assert metadata["inputs"][0]["shape"] == ["-1", "3", "224", "224"], metadata
    config = client.get_model_config("mobilenet", as_json=True)["config"]
    assert config["max_batch_size"] >= 1, config
    assert config["input"][0]["dims"] == ["3", "224", "224"], config
    assert config["input"][0]["data_type"] == "TYPE_FP32", config
    assert config["instance_group"][0]["count"] == 1, config

    def infer(batch, **options):
        tensor = grpcclient.InferInput("input", list(batch.shape), "FP32")
        tensor.set_data_from_numpy(batch)
        return client.infer("mobilenet", [tensor], **options)

    got = infer(cat, priority=1, client_timeout=30).as_numpy("output")
    assert np.allclose(got, expected, atol=1e-4), "gRPC and HTTP disagree"
    four = infer(np.concatenate(images[:4])).as_numpy("output")
    assert np.allclose(four, np.concatenate(singles[:4]), atol=1e-3), "a gRPC batch of four disagrees"
    # Concurrent requests, each must get its own row back.
    results = [None] * 8
    for i, image in enumerate(images):
        tensor = grpcclient.InferInput("input", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        client.async_infer("mobilenet", [tensor],
                           callback=lambda result, error, i=i: results.__setitem__(i, (result, error)))
    import time
    deadline = time.time() + 60
    while any(r is None for r in results) and time.time() < deadline:
        time.sleep(0.01)
    for i, (result, error) in enumerate(results):
        assert error is None, error
        assert np.allclose(result.as_numpy("output"), singles[i], atol=1e-3), f"gRPC request {i} got another row"
    classes = infer(cat, outputs=[grpcclient.InferRequestedOutput("output", class_count=2)]).as_numpy("output")
    assert classes.shape == (1, 2) and int(classes[0][0].decode().split(":")[1]) == top, classes
    stats = client.get_inference_statistics("mobilenet", as_json=True)["model_stats"][0]
    assert int(stats["inference_count"]) > 0, stats
    assert "mobilenet" in [m["name"] for m in client.get_model_repository_index(as_json=True)["models"]]
    try:
        infer(np.zeros((1, 3, 224, 223), np.float32))
    except InferenceServerException as error:
        assert error.status() == "StatusCode.INVALID_ARGUMENT", error.status()
    else:
        raise AssertionError("a wrong shape was accepted over gRPC")
    client.close()
    print("grpc client: ok")


if __name__ == "__main__":
    main()
