import subprocess
import sys

from tfnlp.export import existing_versions


def test_two_exports_at_once_get_distinct_complete_versions(tiny_run, tmp_path):
    command = [sys.executable, "-m", "tfnlp", "export", str(tiny_run.run_dir),
               "--export-dir", str(tmp_path), "--name", "m"]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in processes]
    assert [p.returncode for p in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    printed = sorted(out.strip().rsplit("/", 1)[-1] for out, _ in outputs)
    assert printed == ["1", "2"]
    assert existing_versions(tmp_path / "m") == [1, 2]
    for version in ("1", "2"):
        assert (tmp_path / "m" / version / "saved_model.pb").is_file()
    assert [p.name for p in (tmp_path / "m").iterdir() if p.name.startswith(".")] == []
