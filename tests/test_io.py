"""rvoslib.io: reading frames folders and videos, masks, atomic writers."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rvoslib import video_decode
from rvoslib.io import DAVIS_PALETTE, read_mask, read_video, write_mask, write_video

BLACKSWAN = "davis/blackswan"
REPO = Path(__file__).resolve().parents[1]


def test_palette_matches_davis_annotation(samples):
    palette = np.array(Image.open(samples / BLACKSWAN / "Annotations/00000.png").getpalette()).reshape(-1, 3)
    assert DAVIS_PALETTE.shape == (256, 3) and DAVIS_PALETTE.dtype == np.uint8
    np.testing.assert_array_equal(DAVIS_PALETTE[: len(palette)], palette)
    assert DAVIS_PALETTE[1].tolist() == [128, 0, 0] and DAVIS_PALETTE[255].tolist() == [224, 224, 192]


def test_read_frames_folder_of_samples(samples):
    frames, names = read_video(samples / BLACKSWAN / "JPEGImages")
    assert frames.shape == (12, 480, 854, 3) and frames.dtype == np.uint8
    assert names == [f"{i:05d}" for i in range(12)]
    strided, names2 = read_video(samples / BLACKSWAN / "JPEGImages", stride=5, max_frames=2)
    assert names2 == ["00000", "00005"]
    np.testing.assert_array_equal(strided[1], frames[5])


def test_read_mp4_sample_matches_frames(samples):
    frames, _ = read_video(samples / BLACKSWAN / "JPEGImages")
    video, names = read_video(samples / "blackswan.mp4")
    assert video.shape == frames.shape == (12, 480, 854, 3)
    assert names[0] == "00000" and names[-1] == "00011"
    assert np.abs(video.astype(int) - frames).mean() < 8  # H.264 is lossy, but close


def test_mp4_falls_back_to_imageio(samples, monkeypatch):
    def broken(*args):
        raise RuntimeError("decord unavailable")

    monkeypatch.setattr(video_decode, "_read_with_decord", broken)
    video, names = read_video(samples / "blackswan.mp4", stride=4)
    assert video.shape == (3, 480, 854, 3) and names == ["00000", "00004", "00008"]


def test_missing_empty_corrupt_inputs(tmp_path, save_rgb):
    with pytest.raises(FileNotFoundError, match="does not exist: .*nowhere"):
        read_video(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="frames folder is empty: .*empty"):
        read_video(tmp_path / "empty")
    folder = tmp_path / "frames"
    save_rgb(folder / "00000.jpg", np.zeros((4, 5, 3)))
    (folder / "00001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"cannot decode frame .*00001\.jpg"):
        read_video(folder)
    (tmp_path / "bad.mp4").write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(ValueError, match=r"cannot decode video file .*bad\.mp4"):
        read_video(tmp_path / "bad.mp4")
    with pytest.raises(ValueError, match="stride"):
        read_video(folder, stride=0)


def test_mixed_sizes_name_frame_and_sizes(tmp_path, save_rgb):
    save_rgb(tmp_path / "00000.png", np.zeros((4, 5, 3)))
    save_rgb(tmp_path / "00001.png", np.zeros((4, 5, 3)))
    save_rgb(tmp_path / "00002.png", np.zeros((6, 5, 3)))
    with pytest.raises(ValueError, match=r"mixed sizes: .*00002\.png is 6 x 5 .*00000\.png is 4 x 5"):
        read_video(tmp_path)


def test_gray_rgba_palette_frames_become_rgb(tmp_path):
    Image.fromarray(np.full((3, 4), 100, np.uint8), mode="L").save(tmp_path / "00000.png")
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 10
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "00001.png")
    pal = Image.fromarray(np.ones((3, 4), np.uint8), mode="P")
    pal.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    pal.save(tmp_path / "00002.png")
    frames, _ = read_video(tmp_path)
    assert frames.shape == (3, 3, 4, 3)
    assert frames[0, 0, 0].tolist() == [100, 100, 100]
    assert frames[1, 0, 0].tolist() == [200, 0, 0]
    assert frames[2, 0, 0].tolist() == [10, 20, 30]


def test_mask_roundtrip_and_davis_mask(tmp_path, samples):
    mask = np.zeros((5, 7), np.uint8)
    mask[1:3, 2:5], mask[4, 6], mask[0, 0] = 3, 255, 1
    write_mask(tmp_path / "m.png", mask)
    with Image.open(tmp_path / "m.png") as image:
        assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), mask)
    davis = read_mask(samples / BLACKSWAN / "Annotations/00000.png")
    assert davis.shape == (480, 854) and set(np.unique(davis)) == {0, 1} and int((davis == 1).sum()) == 41343


def test_mask_errors(tmp_path, save_rgb):
    with pytest.raises(ValueError, match=r"\(H, W\) mask"):
        write_mask(tmp_path / "m.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ValueError, match="0..255"):
        write_mask(tmp_path / "m.png", np.full((2, 2), 300))
    save_rgb(tmp_path / "rgb.png", np.zeros((2, 2, 3)))
    with pytest.raises(ValueError, match=r"rgb\.png has image mode 'RGB'"):
        read_mask(tmp_path / "rgb.png")
    with pytest.raises(FileNotFoundError, match="mask file does not exist"):
        read_mask(tmp_path / "none.png")


def test_write_video_gif_and_small_mp4(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(5, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "a.gif", frames, fps=5)
    gif, _ = read_video(tmp_path / "a.gif")
    assert gif.shape == (5, 32, 48, 3)
    write_video(tmp_path / "a.mp4", frames, fps=5)
    mp4, names = read_video(tmp_path / "a.mp4")
    assert mp4.shape == (5, 32, 48, 3) and len(names) == 5
    write_video(tmp_path / "odd.mp4", frames[:, :31, :33], fps=5)  # padded to even size
    assert read_video(tmp_path / "odd.mp4")[0].shape == (5, 32, 34, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4", "odd.mp4"]


def test_failed_write_keeps_existing_file(tmp_path, monkeypatch):
    from rvoslib import writers

    target = tmp_path / "clip.mp4"
    target.write_bytes(b"original")

    def crash(self, frame, name):
        self.tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writers.FFmpegWriter, "_append", crash)
    with pytest.raises(OSError, match=r"clip\.mp4.*No space left") as info:
        write_video(target, np.zeros((2, 4, 4, 3), np.uint8), fps=10)
    assert info.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"original"
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]
    with pytest.raises(ValueError, match=r"uint8 .*clip\.mp4"):
        write_video(target, np.zeros((2, 4, 4, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match="unsupported extension '.txt'"):
        write_video(tmp_path / "clip.txt", np.zeros((2, 4, 4, 3), np.uint8))


# ----------------------------------------------------------------------------- partial and streamed decoding


def test_read_video_frames_equals_a_full_decode(samples, monkeypatch):
    from rvoslib.data.records import VideoRecord
    from rvoslib.io import read_video_frames

    path = samples / "blackswan.mp4"
    full, _ = read_video(path)
    indices = [7, 0, 3, 3, len(full) - 1]
    assert np.array_equal(read_video_frames(path, indices), full[indices])
    record = VideoRecord("blackswan", [f"{i:05d}" for i in range(len(full))], video_path=path)
    assert np.array_equal(record.load_frames([2, 5]), full[[2, 5]])
    with pytest.raises(ValueError, match=rf"blackswan\.mp4 has {len(full)} frames"):
        read_video_frames(path, [len(full)])
    # the imageio fallback gives the same frames
    monkeypatch.setattr(video_decode, "_pick_with_decord", lambda path, wanted: (_ for _ in ()).throw(RuntimeError("no")))
    assert np.array_equal(read_video_frames(path, indices), full[indices])


def test_read_video_frames_stops_after_the_last_wanted_frame(samples, monkeypatch):
    import imageio.v2 as imageio

    from rvoslib.io import read_video_frames

    decoded = []
    real_get_reader = imageio.get_reader

    class Counting:
        def __init__(self, path):
            self.reader = real_get_reader(path)

        def __iter__(self):
            for frame in self.reader:
                decoded.append(1)
                yield frame

        def close(self):
            self.reader.close()

    monkeypatch.setattr(imageio, "get_reader", Counting)
    monkeypatch.setattr(video_decode, "_pick_with_decord", lambda path, wanted: (_ for _ in ()).throw(RuntimeError("no")))
    frames = read_video_frames(samples / "blackswan.mp4", [1, 4])
    assert frames.shape[0] == 2 and len(decoded) == 5  # frames 0..4 decoded, not the whole file
    assert len(read_video(samples / "blackswan.mp4")[0]) > 5


@pytest.mark.parametrize("kind", ["mp4", "folder"])
def test_iter_video_streams_the_same_frames_as_read_video(samples, kind):
    from rvoslib.io import count_video_frames, iter_video

    path = samples / ("blackswan.mp4" if kind == "mp4" else BLACKSWAN + "/JPEGImages")
    frames, names = read_video(path, stride=2, max_frames=4)
    streamed = list(iter_video(path, stride=2, max_frames=4))
    assert [n for n, _ in streamed] == names
    assert np.array_equal(np.stack([f for _, f in streamed]), frames)
    assert count_video_frames(path, stride=2, max_frames=4) == 4
    if kind == "mp4":  # stopping early stops ffmpeg: no decoding of the rest
        stream = iter_video(path)
        assert next(stream)[0] == "00000"
        stream.close()


def test_iter_video_names_a_frame_of_another_size(tmp_path):
    from rvoslib.io import iter_video, write_image

    write_image(tmp_path / "00000.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "00001.png", np.zeros((4, 6, 3), np.uint8))
    with pytest.raises(ValueError, match=r"00001\.png is 4 x 6"):
        list(iter_video(tmp_path))


@pytest.mark.skipif(not os.access("/proc/self/clear_refs", os.W_OK), reason="needs Linux's peak-RSS reset")
def test_streaming_an_mp4_to_a_slow_consumer_does_not_read_ahead(tmp_path):
    """iter_video holds about one frame however slowly frames are taken. (decord's threaded decoder,
    used here before, read ahead into memory: 123 MiB of a 600-frame 320 x 240 video.)"""
    script = textwrap.dedent(f"""
        import time
        import numpy as np
        from rvoslib.io import iter_video
        from rvoslib.writers import open_frame_writer

        path = {str(tmp_path / "long.mp4")!r}
        base = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
        with open_frame_writer(path, 25) as writer:
            for t in range(600):
                writer.append(np.roll(base, 3 * t, axis=1))

        def kib(field):
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))

        stream = iter_video(path)
        for _ in range(10):
            next(stream)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak-RSS counter
        start = kib("VmRSS")
        for _ in stream:
            time.sleep(0.003)  # a slow consumer, as a model between windows is
        print((kib("VmHWM") - start) / 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    growth_mib = float(done.stdout.strip().splitlines()[-1])
    assert growth_mib < 20, growth_mib  # the 590 frames streamed after the reset are 130 MiB
