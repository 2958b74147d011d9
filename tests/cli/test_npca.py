"""Neural PCA commands (rules/npca.smk): listed under their stages; the retrieval's pool lists must
pair up and its validation set comes with its features."""

from spurlab.cli import npca
from tests.cli.commands import TINY, assert_listed, refused


def test_commands_are_listed_under_their_stages():
    stages = {c.name: c.stage for c in npca.COMMANDS}
    assert_listed(stages)
    assert stages["npca"] == "discover" and stages["npca-spufix"] == "mitigate" and stages["npca-summary"] == "measure"


def test_retrieval_inputs_must_go_together(tmp_path, capsys):
    base = ["npca-retrieval", "-c", TINY, "--model-dir", "m", "--bases", "b.h5", "--pairs", "p.parquet",
            "--out-set", tmp_path / "set.h5", "--out", tmp_path / "r.parquet", "--out-harmful", tmp_path / "h.parquet"]  # fmt: skip
    msg = refused([*base, "--pool-sets", "a", "b", "--pool-imagesets", "a.h5", "--pool-features", "a.h5"], capsys)
    assert msg.startswith("--pool-sets and its companions need one entry each")
    msg = refused([*base, "--pool-sets", "a", "--pool-imagesets", "a.h5", "--pool-features", "fa.h5",
                   "--validation-imageset", "v.h5"], capsys)  # fmt: skip
    assert msg == "--validation-imageset and --validation-features go together"
    assert list(tmp_path.iterdir()) == []
