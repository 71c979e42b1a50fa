#!/usr/bin/env bash
# Downloads the ONNX model zoo's MobileNetV2 (mobilenetv2-12.onnx, the same
# interface as the shared de-quantized build) and its ImageNet labels into
# .models/, for machines without the shared models folder. Needs internet
# access to the model zoo; checks the file's published sha256.
set -euo pipefail
cd "$(dirname "$0")/.."
zoo=https://github.com/onnx/models/raw/main/validated/vision/classification
sha256=c0c3f76d93fa3fd6580652a45618618a220fced18babf65774ed169de0432ad5
mkdir -p .models
if [[ ! -f .models/mobilenetv2-12.onnx ]]; then
    echo "downloading mobilenetv2-12.onnx from the ONNX model zoo ..." >&2
    if ! curl -fL --retry 2 -o .models/mobilenetv2-12.onnx.part "$zoo/mobilenet/model/mobilenetv2-12.onnx"; then
        rm -f .models/mobilenetv2-12.onnx.part
        echo "cannot reach the ONNX model zoo. Copy mobilenetv2-12.onnx and imagenet_classes.txt into a folder and set BATCH_SERVING_MODELS to it" >&2
        exit 1
    fi
    if ! echo "$sha256  .models/mobilenetv2-12.onnx.part" | sha256sum -c --quiet; then
        echo "mobilenetv2-12.onnx does not have the published sha256 $sha256 (a git-lfs pointer instead of the model?)" >&2
        exit 1
    fi
    mv .models/mobilenetv2-12.onnx.part .models/mobilenetv2-12.onnx
fi
if [[ ! -f .models/imagenet_classes.txt ]]; then
    # synset.txt lines are "n01440764 tench, Tinca tinca": drop the WordNet id.
    curl -fsSL "$zoo/synset.txt" | cut -d' ' -f2- > .models/imagenet_classes.txt
fi
echo "models in $(pwd)/.models" >&2
