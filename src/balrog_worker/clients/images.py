"""Frames as the PNG bytes a ``Message`` carries, and those bytes as the clients send them.

Every API backend takes images as base64 of the file itself with its media type
(``image/png`` here, lossless, so the model sees the frame exactly as rendered); only the
envelope differs from provider to provider (see each client).
"""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from balrog_worker.clients.errors import FatalModelError

PNG_MEDIA_TYPE = "image/png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_png(frame: np.ndarray) -> bytes:
    """An RGB frame (uint8, height x width x 3) as PNG bytes. The same frame always gives
    the same bytes, so cached requests that carry it stay identical across reruns."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"a frame must be uint8 of shape (height, width, 3), not "
                         f"{frame.dtype} of shape {frame.shape}")
    if frame.shape[0] == 0 or frame.shape[1] == 0:
        raise ValueError(f"a frame must not be empty (shape {frame.shape})")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame)).save(buffer, format="PNG")
    return buffer.getvalue()


def check_png(data: bytes, where: str) -> bytes:
    """``data`` if it is a PNG file, else FatalModelError: a request declaring
    ``image/png`` for anything else would only be refused by the provider."""
    if not isinstance(data, bytes) or not data.startswith(PNG_SIGNATURE):
        raise FatalModelError(f"{where}: an image of a message is not PNG data "
                              "(encode frames with clients.images.encode_png)")
    return data


def png_base64(data: bytes, where: str) -> str:
    """A PNG's bytes as standard base64 text (no ``data:`` prefix)."""
    return base64.b64encode(check_png(data, where)).decode("ascii")
