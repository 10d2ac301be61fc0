"""The one masking rule (``launcher.render.mask``): which names are secret, which arguments carry a secret,
which parts of a URL are credentials; what it never changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from launcher.render.mask import MASK, is_secret, mask_argv, mask_text, scrub, secrets_in, shown, words_of

SECRET_NAMES = [
    # the list of names shown before
    "MY_PASS",
    "AUTH_HEADER",
    "AccessKeyId",
    "apikey",
    "NPM_AUTH",
    # the usual suspects
    "PASSWORD",
    "DB_PASSWORD",
    "MYSQL_PWD",
    "HF_TOKEN",
    "GITHUB_TOKEN",
    "GITHUB_PAT",
    "accessToken",
    "OAuthToken",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
    "OBS_AK",
    "OBS_SK",
    "AK",
    "SK",
    "HUAWEICLOUD_SDK_AK",
    "OPENAI_API_KEY",
    "WANDB_API_KEY",
    "APIKey",
    "api-key",
    "PRIVATE_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
    "DOCKER_CREDS",
    "secretKey",
    "dbpassword",
    "githubtoken",
    "X-Amz-Signature",
    "SESSION_COOKIE",
    "PASSPHRASE",
    "AUTHORIZATION",
]
HARMLESS_NAMES = [
    # the list of names masked before
    "TOKENIZERS_PARALLELISM",
    "MAX_TOKENS",
    "SSH_KEY_PATH",
    "KEY_FILE",
    "PASSWD_FILE",
    "PRIVATE_IP",
    # more of the same kinds
    "PWD",
    "KEY",  # alone: a placeholder (KEY=VALUE in a message), like PWD is the working directory
    "OLDPWD",
    "PATH",
    "LD_LIBRARY_PATH",
    "AUTH_URL",
    "TOKEN_DIR",
    "SECRET_HOST",
    "NUM_TOKENS",
    "MIN_TOKEN_LEN",
    "AUTHOR",
    "MONKEY",
    "BYPASS",
    "PASSES",
    "KEYBOARD",
    "MA_NUM_GPUS",
    "HTTP_PROXY",
    "DATABASE_URL",
    "CUDA_VISIBLE_DEVICES",
    "PYTHONUNBUFFERED",
    "",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names(name: str) -> None:
    assert is_secret(name)
    assert shown(name, "hunter2") == MASK


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names(name: str) -> None:
    assert not is_secret(name)
    assert shown(name, "/some/value") == "/some/value"


def test_words_of_splits_separators_and_camel_case() -> None:
    assert words_of("AccessKeyId") == ["ACCESS", "KEY", "ID"]
    assert words_of("APIKey") == ["API", "KEY"]
    assert words_of("apikey") == ["APIKEY"]
    assert words_of("X-Amz-Signature") == ["X", "AMZ", "SIGNATURE"]
    assert words_of("my.db_pass") == ["MY", "DB", "PASS"]
    assert words_of("S3Bucket2Key") == ["S3", "BUCKET2", "KEY"]
    assert words_of("__") == []


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--password=hunter2"], ["train", f"--password={MASK}"]),
        (["train", "--password", "hunter2", "--lr", "1"], ["train", "--password", MASK, "--lr", "1"]),
        (["train", "--api-key=k", "--token", "t"], ["train", f"--api-key={MASK}", "--token", MASK]),
        (["train", "-password", "x"], ["train", "-password", MASK]),
        (["mysql", "-p", "not-a-password"], ["mysql", "-p", "not-a-password"]),  # -p is not a password
        (["train", "--password", "--verbose"], ["train", "--password", "--verbose"]),  # no value given
        (["train", "--password-file", "/run/pw"], ["train", "--password-file", "/run/pw"]),
        (["train", "--max-tokens", "512"], ["train", "--max-tokens", "512"]),
        (["train", "--password=a b c"], ["train", f"--password={MASK}"]),  # one argument, one value
        (["env", "HF_TOKEN=abc", "python"], ["env", f"HF_TOKEN={MASK}", "python"]),
        (
            ["train", "--data_url=obs://AK123:SK456@bucket/x/"],
            ["train", f"--data_url=obs://{MASK}:{MASK}@bucket/x/"],
        ),
        (
            ["pip", "install", "-i", "https://u:p4ss@pypi/simple"],
            ["pip", "install", "-i", f"https://u:{MASK}@pypi/simple"],
        ),
        (
            ["bash", "-c", "python t.py --token abc --lr 1"],
            ["bash", "-c", f"python t.py --token {MASK} --lr 1"],
        ),
        (["bash", "-c", "run --token", "abc"], ["bash", "-c", "run --token", MASK]),
        (["train", "--token"], ["train", "--token"]),
    ],
)
def test_mask_argv(argv: list[str], expected: list[str]) -> None:
    assert mask_argv(argv) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:pw@proxy:3128", f"http://user:{MASK}@proxy:3128"),
        ("https://user:pw@proxy/x?y=1", f"https://user:{MASK}@proxy/x?y=1"),
        ("postgresql://app:s3cr@t@db:5432/app", f"postgresql://app:{MASK}@db:5432/app"),
        ("obs://AK:SK@bucket/data", f"obs://{MASK}:{MASK}@bucket/data"),
        ("s3://AKIA:wJal/rXUt+nFEMI/K7MD@bucket/k", f"s3://{MASK}:{MASK}@bucket/k"),
        ("https://ghp_abc@github.com/o/r.git", f"https://{MASK}@github.com/o/r.git"),
        ("ssh://git@github.com/o/r.git", "ssh://git@github.com/o/r.git"),
        ("https://registry.npmjs.org/@scope/pkg", "https://registry.npmjs.org/@scope/pkg"),
        ("https://host:8080/@scope/pkg", "https://host:8080/@scope/pkg"),
        ("https://host/path?x=a@b", "https://host/path?x=a@b"),
        ("http://a:b@h1,http://c:d@h2", f"http://a:{MASK}@h1,http://c:{MASK}@h2"),
        ("https://b.s3/k?X-Amz-Signature=abc&x=1", f"https://b.s3/k?X-Amz-Signature={MASK}&x=1"),
        ("/home/ma-user/modelarts/inputs/data_url_0/", "/home/ma-user/modelarts/inputs/data_url_0/"),
        # free text: explanations, errors, tracebacks
        ("exec train --password hunter2 --lr 1", f"exec train --password {MASK} --lr 1"),
        ("MY_TOKEN='a b c' is bad", f"MY_TOKEN='{MASK}' is bad"),
        ("--password 'a b' x", f"--password '{MASK}' x"),
        ("['train', '--password', 'hunter2']", f"['train', '--password', '{MASK}']"),
        ("['--password=hunter2', 'x']", f"['--password={MASK}', 'x']"),
        ("{'HF_TOKEN': 'abc', 'PATH': '/bin'}", f"{{'HF_TOKEN': '{MASK}', 'PATH': '/bin'}}"),
        ("set HF_TOKEN=abc  (state)", f"set HF_TOKEN={MASK}  (state)"),
        (
            "channel arguments dropped: --data_url=obs://k:s@b/ (names from MA_INPUTS)",
            f"channel arguments dropped: --data_url=obs://{MASK}:{MASK}@b/ (names from MA_INPUTS)",
        ),
        ("working directory /home/ma-user (default)", "working directory /home/ma-user (default)"),
        ("set TOKENIZERS_PARALLELISM=false  (state)", "set TOKENIZERS_PARALLELISM=false  (state)"),
        ("--image-env 'NOEQUALS' is not KEY=VALUE", "--image-env 'NOEQUALS' is not KEY=VALUE"),
        (
            "ma-launch: error: cannot read /x/token: Permission denied",
            "ma-launch: error: cannot read /x/token: Permission denied",
        ),
    ],
)
def test_mask_text(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_values_are_masked_by_what_they_hold_too() -> None:
    assert shown("HTTP_PROXY", "http://user:pw@proxy") == f"http://user:{MASK}@proxy"
    assert shown("EXTRA_ARGS", "--token abc --lr 1") == f"--token {MASK} --lr 1"
    assert shown("PIP_INDEX_URL", "https://u:p@mirror/simple") == f"https://u:{MASK}@mirror/simple"


def test_scrub_removes_every_form_of_a_known_secret() -> None:
    environ = {"HF_TOKEN": "tok-123456", "PATH": "/bin", "PROXY": "http://u:pw-9876@p", "AUTH": "1"}
    secrets = secrets_in(environ, ["train", "--password", "argv-secret"])
    assert "tok-123456" in secrets and "pw-9876" in secrets and "argv-secret" in secrets
    assert "1" not in secrets  # too short to find again without destroying the text
    text = "KeyError: 'tok-123456'\n  got argv-secret and pw-9876 in line 12"
    assert scrub(text, secrets) == f"KeyError: '{MASK}'\n  got {MASK} and {MASK} in line 12"


_text = st.text(st.characters(codec="utf-8"), max_size=60)


@given(st.lists(_text, max_size=8))
def test_masking_is_idempotent_and_keeps_the_word_count(argv: list[str]) -> None:
    once = mask_argv(argv)
    assert len(once) == len(argv)
    assert mask_argv(once) == once


@given(_text)
def test_text_masking_is_idempotent(text: str) -> None:
    once = mask_text(text)
    assert mask_text(once) == once


_value = st.text(st.characters(codec="utf-8"), min_size=1, max_size=30)


@given(st.sampled_from(SECRET_NAMES), _value.filter(lambda v: not v.startswith("--")))
def test_a_secret_value_never_survives(name: str, value: str) -> None:
    assert shown(name, value) == MASK
    assert mask_argv(["prog", f"--{name}={value}"]) == ["prog", f"--{name}={MASK}"]
    assert mask_argv(["prog", f"--{name}", value]) == ["prog", f"--{name}", MASK]
    assert mask_argv(["env", f"{name}={value}"]) == ["env", f"{name}={MASK}"]
