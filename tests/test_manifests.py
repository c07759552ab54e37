"""Per-shard audio manifests: rewritten only when a recording is added, removed or changed."""
import os

from conftest import tone, write
from soundclf.manifests import manifest_lines, write_manifest


def test_a_manifest_changes_only_with_its_recordings(tmp_path):
    a = write(tmp_path / "a.wav", tone(1, 8000), 8000)
    b = write(tmp_path / "b.wav", tone(2, 8000), 8000)
    manifest = tmp_path / "m/shard_000.tsv"
    write_manifest(manifest, [("b", str(b)), ("a", str(a))])
    lines = manifest.read_text().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["a", "b"]  # sorted by key
    assert lines[0].split("\t")[1:] == [str(a), str(a.stat().st_size), str(a.stat().st_mtime_ns)]
    os.utime(manifest, ns=(1, 1))
    write_manifest(manifest, [("a", str(a)), ("b", str(b))])
    assert manifest.stat().st_mtime_ns == 1  # same recordings: not rewritten
    write(b, tone(3, 8000), 8000)  # b replaced
    write_manifest(manifest, [("a", str(a)), ("b", str(b))])
    assert manifest.stat().st_mtime_ns > 1 and str(b.stat().st_size) in manifest.read_text()
    os.utime(manifest, ns=(1, 1))
    write_manifest(manifest, [("a", str(a))], write=False)  # a cluster job re-reading the plan writes nothing
    assert manifest.stat().st_mtime_ns == 1
    assert manifest_lines([("gone", str(tmp_path / "gone.wav"))]) == ""  # a missing file is the index's to report
