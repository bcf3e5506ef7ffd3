import numpy as np
import pytest

from flowprep.format.codecs import Codec, CodecError, parse_codec


@pytest.mark.parametrize("text,expected", [
    ("jpeg", "jpeg:95"), ("JPEG:80", "jpeg:80"), ("png", "png:1"), ("png:9", "png:9"),
    ("raw", "raw:none"), ("raw:lzf", "raw:lzf"), ("raw:gzip", "raw:gzip:4"), ("raw:gzip:9", "raw:gzip:9"),
])
def test_parse_and_normalise(text, expected):
    assert str(parse_codec(text)) == expected
    assert str(parse_codec(str(parse_codec(text)))) == expected  # stable through the stored form


@pytest.mark.parametrize("text", ["webp", "jpeg:0", "jpeg:101", "jpeg:high", "png:10", "raw:zstd", "raw:lzf:3", "jpeg:9:9"])
def test_bad_codecs_name_the_value_and_the_accepted_ones(text):
    with pytest.raises(CodecError) as err:
        parse_codec(text)
    assert text in str(err.value)


def test_lossless_codecs_round_trip_exactly_and_jpeg_closely():
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (24, 32), dtype=np.uint8)
    color = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    for codec in (parse_codec("png"), parse_codec("raw:lzf")):
        np.testing.assert_array_equal(codec.decode(codec.encode(gray), grayscale=True), gray)
        np.testing.assert_array_equal(codec.decode(codec.encode(color), grayscale=False), color)
    smooth = np.tile(np.arange(32, dtype=np.uint8) * 4, (24, 1))
    jpeg = parse_codec("jpeg:95")
    restored = jpeg.decode(jpeg.encode(smooth), grayscale=True)
    assert np.abs(restored.astype(int) - smooth).max() <= 3


def test_undecodable_bytes_raise_a_codec_error():
    with pytest.raises(CodecError, match="does not decode"):
        Codec("jpeg", 95).decode(np.frombuffer(b"not a jpeg", np.uint8), grayscale=True)


def test_every_registered_codec_parses_its_name_stores_what_it_reads_and_is_in_the_help():
    """A codec is one entry of the registry: each parses from its bare name to a stored form that
    parses back to itself, stores an image and reads it back (exactly unless lossy), and its
    syntax is in the options' help."""
    from flowprep.format.codecs import CODEC_HELP, CODECS

    gray = np.tile(np.arange(32, dtype=np.uint8) * 4, (24, 1))
    for name, kind in CODECS.items():
        codec = parse_codec(name)
        assert codec.kind == name and codec.entry is kind and parse_codec(str(codec)) == codec
        assert codec.encoded == kind.encoded and kind.syntax in CODEC_HELP
        stored = codec.encode(gray)
        assert stored.ndim == (1 if codec.encoded else 2)
        restored = codec.decode(stored, grayscale=True)
        assert np.abs(restored.astype(int) - gray).max() <= (3 if name == "jpeg" else 0), name


def test_a_codec_of_no_registered_kind_is_refused_naming_it():
    with pytest.raises(CodecError, match="'webp'"):
        Codec("webp", 90)
