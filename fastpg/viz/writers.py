"""Video file writers for fastpg video: a streaming GIF writer and an MP4 one (imageio-ffmpeg).

Both take uint8 (height, width, 3) frames through write() and finish with close().
"""
import numpy as np


class _GifWriter:
    """Streams an animated GIF frame by frame, storing only each frame's changed rectangle.

    Colours are exact: frames are mapped to a palette that grows as new
    colours appear (Pong and the overlay use about a dozen); frames after it
    has grown carry it as a local colour table. Only a frame that would take
    the palette past 256 colours is quantised (median cut), starting a new
    palette. Pillow's own writer would keep every frame in memory, and a good
    agent's game has thousands.
    """

    def __init__(self, path, duration_ms):
        self._file = open(path, "wb")
        self._duration = duration_ms
        self._lookup = np.full(1 << 24, 0xFFFF, dtype=np.uint16)  # packed RGB -> palette index
        self._colours = []  # packed RGB, in palette order
        self._header_colours = None  # the palette in the file's header
        self._previous = None  # the last frame's indices; None: redraw everything

    def _indices(self, rgb):
        keys = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        indices = self._lookup[keys]
        missing = indices == 0xFFFF
        if missing.any():
            new = np.unique(keys[missing])
            if len(self._colours) + len(new) > 256:
                return self._quantised(rgb)
            self._lookup[new] = np.arange(len(self._colours), len(self._colours) + len(new))
            self._colours += new.tolist()
            indices = self._lookup[keys]
        return indices.astype(np.uint8)

    def _quantised(self, rgb):
        from PIL import Image

        image = Image.fromarray(rgb).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        palette = np.array(image.getpalette()[:768], dtype=np.int32).reshape(-1, 3)
        self._lookup[self._colours] = 0xFFFF
        self._colours = ((palette[:, 0] << 16) | (palette[:, 1] << 8) | palette[:, 2]).tolist()
        self._lookup[self._colours[::-1]] = np.arange(len(self._colours))[::-1]  # the first index wins
        self._previous = None if self._header_colours is None else np.full(rgb.shape[:2], -1)
        return np.asarray(image)

    def write(self, rgb):
        """Append one uint8 (height, width, 3) frame."""
        from PIL import GifImagePlugin, Image

        indices = self._indices(rgb)
        image = Image.fromarray(indices)  # mode L; putpalette makes it P
        flat = []
        for colour in self._colours:
            flat += [(colour >> 16) & 255, (colour >> 8) & 255, colour & 255]
        image.putpalette(flat)
        if self._header_colours is None:
            self._header_colours = list(self._colours)
            header, _ = GifImagePlugin.getheader(image, info={"loop": 0, "duration": self._duration})
            chunks = header + GifImagePlugin.getdata(image, (0, 0), duration=self._duration, disposal=1)
        else:
            rows, cols = np.nonzero(indices != self._previous)
            if rows.size:
                box = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
            else:
                box = (0, 0, 1, 1)  # unchanged: redraw one pixel to keep the frame's time
            chunks = GifImagePlugin.getdata(image.crop(box), box[:2], duration=self._duration, disposal=1,
                                            include_color_table=self._colours != self._header_colours)
        for chunk in chunks:
            self._file.write(chunk)
        self._previous = indices

    def close(self):
        if self._header_colours is not None:
            self._file.write(b";")  # trailer
        self._file.close()


class _Mp4Writer:
    def __init__(self, path, fps):
        import imageio.v2 as imageio

        self._writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264",
                                          quality=7, macro_block_size=2, ffmpeg_log_level="error")

    def write(self, rgb):
        self._writer.append_data(rgb)

    def close(self):
        self._writer.close()
