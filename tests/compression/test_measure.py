import gzip

from tfnlp.compression import measure


def test_file_sizes_and_latency(tmp_path):
    path = tmp_path / "zeros.bin"
    path.write_bytes(bytes(10_000))
    sizes = measure.file_sizes(path)
    assert sizes == {"bytes": 10_000, "gzip_bytes": len(gzip.compress(bytes(10_000), 9))}
    assert sizes["gzip_bytes"] < 100
    calls = []
    assert measure.median_latency_ms(lambda: calls.append(1), calls=20, warmup=3) >= 0.0
    assert len(calls) == 23
