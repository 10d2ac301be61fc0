"""Secrets never reach the job log: every output channel of the real command follows the one masking rule
(``launcher.render.mask``), while the program still gets every value exactly and the ``--dry-run`` line
(the command to paste) stays exact."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from condakit import REAL_PYTHON, make_env, write_exe
from launchkit import clean_env, launch

#: name -> value, all of which must be masked wherever ma-launch prints them.
SECRET_STATE = {
    "MY_PASS": "pass-value-1",
    "AUTH_HEADER": "Bearer header-value-2",
    "AccessKeyId": "akid-value-3",
    "apikey": "apikey-value-4",
    "NPM_AUTH": "npm-value-5",
    "HTTP_PROXY": "http://proxyuser:proxy-pw-6@proxy:3128",
    "PIP_INDEX_URL": "https://pipuser:pip-pw-7@mirror/simple",
    "DATABASE_URL": "postgresql://app:db-pw-8@db:5432/app",
    "OBS_URL": "obs://obs-ak-9:obs-sk-10@bucket/data",
}
#: Harmless names whose values are needed when debugging: shown.
PLAIN_STATE = {
    "TOKENIZERS_PARALLELISM": "false-shown-1",
    "MAX_TOKENS": "4096-shown-2",
    "SSH_KEY_PATH": "/keys/shown-3",
    "KEY_FILE": "/keys/shown-4",
    "PASSWD_FILE": "/keys/shown-5",
    "PRIVATE_IP": "10.0.0.6-shown",
}
SECRET_ARGS = ["--password=arg-pw-11", "--token", "arg-tok-12", "--api-key=arg-key-13"]
PLAIN_ARGS = ["-p", "not-a-password", "--lr", "0.1"]
CHANNEL = "--data_url=obs://chan-ak-14:chan-sk-15@bucket/in/"
SECRETS = [
    "pass-value-1",
    "header-value-2",
    "akid-value-3",
    "apikey-value-4",
    "npm-value-5",
    "proxy-pw-6",
    "pip-pw-7",
    "db-pw-8",
    "obs-ak-9",
    "obs-sk-10",
    "arg-pw-11",
    "arg-tok-12",
    "arg-key-13",
    "chan-ak-14",
    "chan-sk-15",
]
SHOWN = [*PLAIN_STATE.values(), "not-a-password", "proxyuser", "pipuser"]


def setup(tmp_path: Path) -> tuple[dict[str, str], list[str], Path]:
    env_dir = make_env(tmp_path / "e", state={**SECRET_STATE, **PLAIN_STATE})
    write_exe(
        env_dir / "bin" / "rec",
        f"#!{REAL_PYTHON}\nimport json, os, sys\n"
        "json.dump({'argv': sys.argv[1:], 'env': dict(os.environ)}, open(os.environ['REC_OUT'], 'w'))\n",
    )
    out = tmp_path / "rec.json"
    env = clean_env(tmp_path, REC_OUT=str(out))
    options = ["-p", str(env_dir), "--channel-args", "env", "--ld-library-path", "off"]
    return env, [*options, "--", "rec", *SECRET_ARGS, *PLAIN_ARGS, CHANNEL], out


def leaked(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def test_the_explanation_and_the_exec_line_mask_every_secret(tmp_path: Path) -> None:
    env, args, out = setup(tmp_path)
    result = launch(["-v", *args], env)
    assert result.returncode == 0, result.stderr
    assert leaked(result.stderr) == [], result.stderr
    assert all(value in result.stderr for value in SHOWN), result.stderr
    exec_line = [line for line in result.stderr.splitlines() if line.startswith("ma-launch: exec ")]
    assert exec_line and "--password=********" in exec_line[0] and "--token '********'" in exec_line[0]
    # Masking changes what is shown, never what runs.
    seen = json.loads(out.read_text())
    assert seen["argv"] == [*SECRET_ARGS, *PLAIN_ARGS]
    assert seen["env"]["data_url"] == "obs://chan-ak-14:chan-sk-15@bucket/in/"
    assert all(seen["env"][name] == value for name, value in {**SECRET_STATE, **PLAIN_STATE}.items())


def test_the_json_plan_masks_every_field_including_line_and_argv(tmp_path: Path) -> None:
    env, args, out = setup(tmp_path)
    result = launch(["--json", "--shell", "sh", *args], env)
    assert result.returncode == 0, result.stderr
    assert leaked(result.stdout) == []
    data = json.loads(result.stdout)
    assert data["argv"][1:4] == ["--password=********", "--token", "********"]
    assert "TOKENIZERS_PARALLELISM=false-shown-1" in data["line"]
    assert "MY_PASS='********'" in data["line"] or "MY_PASS=********" in data["line"]
    assert data["set"]["HTTP_PROXY"] == "http://proxyuser:********@proxy:3128"
    assert all(value in result.stdout for value in SHOWN)
    assert not out.exists()


def test_the_dry_run_line_is_exact_and_its_explanation_is_masked(tmp_path: Path) -> None:
    env, args, out = setup(tmp_path)
    result = launch(["--dry-run", "--shell", "sh", *args], env)
    assert result.returncode == 0, result.stderr
    assert leaked(result.stderr) == [], result.stderr
    # The line is the command itself, the one place values appear: it must run as the real run would.
    assert leaked(result.stdout) == SECRETS
    subprocess.run(["sh", "-c", result.stdout], env=env, check=True, timeout=60)
    assert json.loads(out.read_text())["argv"] == [*SECRET_ARGS, *PLAIN_ARGS]


def test_bake_comments_mask_the_command_line(tmp_path: Path) -> None:
    env, args, _ = setup(tmp_path)
    script = tmp_path / "boot.sh"
    result = launch(["bake", "-o", str(script), *args], env)
    assert result.returncode == 0, result.stderr
    comments = "\n".join(line for line in script.read_text().splitlines() if line.startswith("#"))
    assert "# made with: ma-launch bake" in comments
    assert leaked(comments) == [] and leaked(result.stderr) == []
    assert "--password=********" in comments and "not-a-password" in comments


def test_error_messages_mask_the_values_they_quote(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    result = launch(["--", "https://user:err-pw-16@host/tool", "--token", "x"], env)
    assert result.returncode == 127
    assert "err-pw-16" not in result.stderr and "https://user:********@host/tool" in result.stderr
    bad_port = launch(["--master-port", "obs://ak-17:sk-18@b", "--", "true"], env)
    assert bad_port.returncode == 2
    assert "ak-17" not in bad_port.stderr and "sk-18" not in bad_port.stderr, bad_port.stderr


def test_the_supervisor_masks_what_it_prints(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    result = subprocess.run(
        [REAL_PYTHON, "-m", "launcher.run.supervise", "--", "https://user:sup-pw-19@host/tool"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd=str(tmp_path),
    )
    assert result.returncode == 127
    assert "sup-pw-19" not in result.stderr and "user:********@host" in result.stderr
