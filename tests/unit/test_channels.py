from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from launcher.errors import UsageError
from launcher.modelarts.channels import (
    ChannelSplit,
    channel_names,
    env_name,
    parse_channel_list,
    split_channel_args,
    trailing_start,
)
from launcher.modes import CHANNEL_MODES, parse_mode

if TYPE_CHECKING:
    from launcher.modes import ChannelMode

DATA = "/home/ma-user/modelarts/inputs/data_url_0/"
TRAIN = "/home/ma-user/modelarts/outputs/train_url_0/"
NAMES = ("data_url", "train_url")

STRICT = """for a; do case $a in --*) echo "unknown $a" >&2; exit 2;; esac; done; echo "$data_url $train_url"
"""


def split(argv: list[str], mode: ChannelMode, environ: dict[str, str] | None = None) -> ChannelSplit:
    return split_channel_args(argv, environ or {}, mode=mode, names=NAMES)


@pytest.fixture
def strict_script(tmp_path: Path) -> Path:
    path = tmp_path / "strict.sh"
    path.write_text(STRICT)
    return path


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is missing")
def test_real_script_rejecting_unknown_flags(strict_script: Path) -> None:
    argv = ["bash", str(strict_script), "plain", f"--data_url={DATA}", f"--train_url={TRAIN}"]
    base = {k: v for k, v in os.environ.items() if k not in NAMES}
    broken = subprocess.run(argv, env=base, capture_output=True, text=True)
    assert broken.returncode == 2
    assert "unknown --data_url" in broken.stderr

    result = split(argv, "env")
    assert result.argv == ["bash", str(strict_script), "plain"]
    assert result.env == {"data_url": DATA, "train_url": TRAIN}
    assert result.removed == [f"--data_url={DATA}", f"--train_url={TRAIN}"]
    ran = subprocess.run(result.argv, env={**base, **result.env}, capture_output=True, text=True)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"{DATA} {TRAIN}\n"

    dropped = split(argv, "drop")
    assert dropped.argv == result.argv
    assert dropped.env == {}
    assert dropped.removed == result.removed
    ran = subprocess.run(dropped.argv, env=base, capture_output=True, text=True)
    assert (ran.returncode, ran.stdout) == (0, " \n")


def test_pass_is_unchanged() -> None:
    argv = ["python", "t.py", f"--data_url={DATA}"]
    result = split(argv, "pass")
    assert result.argv == argv
    assert result.env == {} and result.removed == []


def test_space_form() -> None:
    result = split(["python", "t.py", "--data_url", DATA, "--train_url", TRAIN], "env")
    assert result.argv == ["python", "t.py"]
    assert result.env == {"data_url": DATA, "train_url": TRAIN}
    assert result.removed == ["--data_url", DATA, "--train_url", TRAIN]


def test_mixed_forms_and_repeats() -> None:
    result = split(["python", "t.py", "--data_url", "/a", f"--train_url={TRAIN}", "--data_url=/b"], "env")
    assert result.argv == ["python", "t.py"]
    assert result.env == {"data_url": "/b", "train_url": TRAIN}


def test_empty_and_nothing_appended() -> None:
    assert split([], "env") == ChannelSplit([], {}, [], NAMES, "--channel-names")
    assert split(["python"], "env").argv == ["python"]
    assert split(["python", "t.py", "--lr", "1"], "env").argv == ["python", "t.py", "--lr", "1"]
    # the program itself is never taken, even when it looks like a channel argument
    assert split(["--data_url=/x"], "env").argv == ["--data_url=/x"]


def test_empty_value() -> None:
    assert split(["p", "--data_url="], "env").env == {"data_url": ""}


@pytest.mark.parametrize(
    "argv",
    [
        # the user's own argument before one of theirs
        ["python", "t.py", "--data_url=/mine", "--epochs", "3"],
        ["python", "t.py", "--data_url", "/mine", "-v"],
        # similar names
        ["python", "t.py", "--data_url_extra=/x"],
        ["python", "t.py", "--my_data_url=/x"],
        ["python", "t.py", "--data_url_extra", "/x"],
        ["python", "t.py", "-data_url=/x"],
        ["python", "t.py", "data_url=/x"],
        # a flag with no value at the very end is not a channel argument
        ["python", "t.py", "--data_url"],
        # a value that is a flag is not taken as the value
        ["python", "t.py", "--data_url", "--train_url"],
    ],
)
def test_user_arguments_untouched(argv: list[str]) -> None:
    result = split(argv, "env")
    assert result.argv == argv
    assert result.removed == [] and result.env == {}


def test_only_trailing_run_is_taken() -> None:
    argv = ["python", "t.py", "--data_url=/mine", "--data_url_extra=/e", "x", f"--data_url={DATA}"]
    result = split(argv, "env")
    assert result.argv == argv[:-1]
    assert result.env == {"data_url": DATA}


def test_value_after_space_form_must_not_start_with_dashes() -> None:
    result = split(["python", "t.py", "--data_url", "--train_url=/t"], "env")
    assert result.argv == ["python", "t.py", "--data_url"]
    assert result.env == {"train_url": "/t"}


def test_bad_mode() -> None:
    with pytest.raises(UsageError):
        parse_mode("keep", CHANNEL_MODES, "--channel-args")


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ('[{"name": "images"}, {"name": "labels"}]', ["images", "labels"]),
        ('[{"input_name": "images", "local_dir": "/x"}]', ["images"]),
        ('[{"output_name": "model"}]', ["model"]),
        ('{"name": "images"}', ["images"]),
        ('["images", "labels", "images"]', ["images", "labels"]),
        ("images,labels", ["images", "labels"]),
        (" images , labels ", ["images", "labels"]),
        ("images labels", ["images", "labels"]),
        ("", []),
        ("[not json", []),  # no usable name: the brackets make none of it a name
        ('[{"other": 1}]', []),
        ("a b/c", ["a"]),
    ],
)
def test_parse_channel_list(raw: str, names: list[str]) -> None:
    assert parse_channel_list(raw) == names


def test_names_from_platform_variables() -> None:
    environ = {"MA_INPUTS": '[{"name": "images"}]', "MA_OUTPUTS": "model"}
    assert channel_names(environ, NAMES) == (("images", "model"), "MA_INPUTS+MA_OUTPUTS")
    assert channel_names({"MA_INPUTS": "[]"}, NAMES) == (NAMES, "--channel-names")
    argv = ["python", "t.py", "--data_url=/d", "--images=/i", "--model", "/m"]
    result = split_channel_args(argv, environ, mode="env", names=NAMES)
    assert result.argv == ["python", "t.py", "--data_url=/d"]
    assert result.env == {"images": "/i", "model": "/m"}
    assert result.names_from == "MA_INPUTS+MA_OUTPUTS"


def test_env_name() -> None:
    assert env_name("data_url") == "data_url"
    assert env_name("data-url.v2") == "data_url_v2"
    assert env_name("1st") == "_1st"
    result = split_channel_args(["p", "--data-url=/x"], {}, mode="env", names=["data-url"])
    assert result.env == {"data_url": "/x"}


user_word = st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=0, max_size=12)
channel_arg = st.one_of(
    st.tuples(st.sampled_from(NAMES), user_word).map(lambda t: [f"--{t[0]}={t[1]}"]),
    st.tuples(st.sampled_from(NAMES), user_word.filter(lambda w: not w.startswith("--"))).map(
        lambda t: [f"--{t[0]}", t[1]]
    ),
)


@given(
    st.lists(user_word, min_size=0, max_size=8),
    st.sampled_from(["--verbose", "--data_url_extra=1", "--my_data_url", "--data_url", "--train_url"]),
    st.lists(channel_arg, min_size=0, max_size=4),
)
def test_non_trailing_arguments_never_touched(user: list[str], stop: str, appended: list[list[str]]) -> None:
    """Whatever the user wrote up to a word that is not a channel argument stays; the appended run goes."""
    head = ["prog", *user, stop]
    tail = [w for arg in appended for w in arg]
    result = split([*head, *tail], "drop")
    assert result.argv == head
    assert result.removed == tail


@given(st.lists(st.text(max_size=6), max_size=10))
def test_trailing_start_bounds(argv: list[str]) -> None:
    start = trailing_start(argv, NAMES)
    assert (start >= 1 or not argv) and start <= len(argv)
    result = split(argv, "drop")
    assert result.argv == argv[:start] and result.removed == argv[start:]


def test_channel_mode() -> None:
    assert [parse_mode(m, CHANNEL_MODES, "--channel-args") for m in ("pass", "env", "drop")] == [
        "pass",
        "env",
        "drop",
    ]
    with pytest.raises(UsageError, match=r"'pa\\nss'"):
        parse_mode("pa\nss", CHANNEL_MODES, "--channel-args")


@pytest.mark.parametrize(
    "raw",
    [
        "[" * 100_000,  # json.loads raises RecursionError, not ValueError
        '{"name": ' * 50_000,
        '["\\ud800", "d\\u00e4ta", "x y"]',  # a lone surrogate, a non-ASCII letter, a blank
        "\udcff,\ud800",
    ],
)
def test_unusable_platform_values_give_no_names(raw: str) -> None:
    assert parse_channel_list(raw) == []
    assert channel_names({"MA_INPUTS": raw}, NAMES) == (NAMES, "--channel-names")


def test_empty_names_are_ignored() -> None:
    """An empty name would turn `--=x` into a variable with an empty name, which exec refuses."""
    result = split_channel_args(["p", "--=x", "--data_url=/d"], {}, mode="env", names=["", "data_url"])
    assert (result.argv, result.env, result.names) == (["p", "--=x"], {"data_url": "/d"}, ("data_url",))


hostile_text = st.text(alphabet=st.sampled_from('[]{}",:\\ \n\t_a1.-²\ud800\udcff'), max_size=30)


@given(st.one_of(st.text(max_size=30), hostile_text), st.lists(st.text(max_size=6), max_size=6))
def test_any_platform_value_gives_exportable_names(raw: str, argv: list[str]) -> None:
    names, _source = channel_names({"MA_INPUTS": raw, "MA_OUTPUTS": raw[::-1]}, NAMES)
    result = split_channel_args(["p", *argv], {"MA_INPUTS": raw}, mode="env", names=NAMES)
    for name in (*names, *result.env):
        assert name.isascii() and (name[:1].isalpha() or name[:1] == "_")
    for variable in result.env:
        assert variable.isidentifier()
