"""ImageNet's input as a Python server prepares it with PIL: decode,
resize the short side to 256 (bilinear), centre-crop 224, normalize with
the mean and std, NCHW with a batch axis. What batch-serving-ort's
`preprocess` does, for the Python peer server and for timing PIL against
it (scripts/batch-of-one.sh)."""

import io

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def prepare(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data)).convert("RGB")
    width, height = image.size
    scale = 256 / min(width, height)
    image = image.resize((round(width * scale), round(height * scale)), Image.BILINEAR)
    width, height = image.size
    left, top = (width - 224) // 2, (height - 224) // 2
    image = image.crop((left, top, left + 224, top + 224))
    pixels = (np.asarray(image, np.float32) / 255.0 - MEAN) / STD
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))[None]
