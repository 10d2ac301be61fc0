"""Sourcing bash scripts and reading back what each one changed: the protocol and its rules.

One bash sources the scripts in order (the env's ``activate.d`` scripts; later ``--source`` files), as
``conda activate`` does in the user's shell. Around each script the bash program written here reports to a
channel (fd 3, set up by the runner, :mod:`launcher.run.activate`) NUL-separated records::

    @dump start  NAME=VALUE…  @fn NAME DEFINITION…  @end start COUNT
    @begin 0   (script 0 runs: fd 3 is closed for it and its children)
    @status 0 CODE  @dump 0 …  @end 0 COUNT
    …
    @done

The environment is dumped by bash itself, from builtins only (``builtin compgen -e``, ``builtin printf``):
it does not depend on the scripts' ``PATH``, on functions they define (``env``, ``printf``) or on the
kernel's limits for an exec (a value of any size). Only variables bash can hold are dumped; names no
shell can hold (``BATCH_job.0_HOSTS``) never appear in a dump, so they are never changed: they keep their
inherited values. The effect of a script is the difference between the dumps before and after it.

A script runs with the channel closed (bash keeps its own copy, close-on-exec), so a program it starts in
the background (``agent &``) does not hold it; and the runner reads until ``@done``, never until the end of
the channel, so a background subshell that keeps bash's copy does not hold the launch either. A script's
effect is applied only when its dump is complete; a dump that cannot be read is an error naming the
script, never an empty environment.

The bash program and its parser are one protocol and change together, hence one module (a little over
300 lines, a third of it the bash text).
"""

from __future__ import annotations

import os

from launcher.core.plan import Change
from launcher.core.record import Record
from launcher.errors import ConfigError, TimeoutError_, UnavailableError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Callable, Optional

    #: Runs a bash program (``(program, environ, cwd, timeout) -> ShellOutput``) with the channel on
    #: :data:`CHANNEL_FD`; :func:`launcher.run.activate.run_bash_program` in a real launch, fakes in tests.
    ScriptRunner = Callable[[str, Mapping[str, str], str, float], "ShellOutput"]

#: The descriptor the bash program writes its records to.
CHANNEL_FD = 3
#: The last record of a complete run; the runner stops reading when it arrives.
END = b"@done"
#: Variables a bash process changes by itself; never attributed to a script.
SHELL_NOISE = frozenset({"_", "SHLVL", "PWD", "OLDPWD"})


class Script(Record):
    """A script to source: its ``path``, and ``source``, the words that attribute its changes (the path
    for an ``activate.d`` script)."""

    __slots__ = ("path", "source")

    def __init__(self, path: str, source: Optional[str] = None) -> None:
        self.path = path
        self.source = source if source is not None else path


class ShellOutput(Record):
    """What the bash program wrote to the channel, and whether the deadline stopped it."""

    __slots__ = ("data", "timed_out")

    def __init__(self, data: bytes, timed_out: bool = False) -> None:
        self.data = data
        self.timed_out = timed_out


# The dump, from builtins only: exported variables but arrays (bash does not export those), then exported
# functions (as the BASH_FUNC_NAME%% variables bash passes them in), then a count to check against. The
# text of a $(...) is parsed when it runs, so alias expansion (a script may turn it on) is off meanwhile;
# a variable exported just for the listing proves that the listing worked: without it there is no @end.
# The listing is split into lines with IFS and globbing set just for that (and put back before any value
# is read: IFS may be exported).
# After a script: a function named builtin would capture every command here, so it is removed first, in
# POSIX mode (entered by assigning POSIXLY_CORRECT, no command needed), where the special builtin unset is
# found before any function; the mode and the variable are then put back as the script left them.
_DUMP = r"""__ma_launch_dump() {
  builtin local __ma_aliases=0 __ma_noglob=0 __ma_ifs=${IFS-} __ma_ifs_set=${IFS+1} __ma_ok=0
  builtin local __ma_section=arrays __ma_name __ma_all
  builtin local -a __ma_list __ma_entries __ma_fns
  builtin local -A __ma_arrays
  if builtin shopt -q expand_aliases; then __ma_aliases=1; builtin shopt -u expand_aliases; fi
  builtin export __ma_launch_mark=1
  __ma_all=$(
    builtin compgen -A arrayvar
    builtin printf '%s\n' @variables
    builtin compgen -e
    builtin printf '%s\n' @functions
    builtin declare -Fx
  )
  builtin unset -v __ma_launch_mark
  if ((__ma_aliases)); then builtin shopt -s expand_aliases; fi
  if [[ $- == *f* ]]; then __ma_noglob=1; else builtin set -f; fi
  IFS=$'\n'
  __ma_list=($__ma_all)
  if [[ $__ma_ifs_set ]]; then IFS=$__ma_ifs; else builtin unset -v IFS; fi
  if ((!__ma_noglob)); then builtin set +f; fi
  for __ma_name in "${__ma_list[@]}"; do
    case $__ma_section:$__ma_name in
      *:@variables) __ma_section=variables ;;
      *:@functions) __ma_section=functions ;;
      arrays:*) __ma_arrays[$__ma_name]=1 ;;
      variables:__ma_launch_mark) __ma_ok=1 ;;
      variables:*) [[ ${__ma_arrays[$__ma_name]} ]] || __ma_entries+=("$__ma_name=${!__ma_name}") ;;
      'functions:declare -fx '*) __ma_fns+=("${__ma_name#declare -fx }") ;;
    esac
  done
  {
    builtin printf '@dump %s\0' "$1"
    if ((${#__ma_entries[@]})); then builtin printf '%s\0' "${__ma_entries[@]}"; fi
    for __ma_name in "${__ma_fns[@]}"; do
      builtin printf '@fn %s\0' "$__ma_name"
      builtin declare -f -- "$__ma_name"
      builtin printf '\0'
    done
    if ((__ma_ok)); then
      builtin printf '@end %s %s\0' "$1" "$((${#__ma_entries[@]} + ${#__ma_fns[@]}))"
    fi
  } >&3
}
__ma_launch_after() {
  __ma_posix_var=${POSIXLY_CORRECT+1} __ma_posix_value=${POSIXLY_CORRECT-} __ma_posix_mode=0
  [[ :$SHELLOPTS: == *:posix:* ]] && __ma_posix_mode=1
  POSIXLY_CORRECT=y
  unset -f builtin
  if [[ $__ma_posix_var ]]; then POSIXLY_CORRECT=$__ma_posix_value; else unset -v POSIXLY_CORRECT; fi
  if ((__ma_posix_mode)); then builtin set -o posix; else builtin set +o posix; fi
  builtin set +o errexit +o nounset +o xtrace
  builtin printf '@status %s %s\0' "$1" "$2" >&3
  __ma_launch_dump "$1"
}
"""


def bash_program(scripts: Sequence[Script]) -> str:
    """The bash program that sources ``scripts`` and reports to the channel (see the module's text).

    Everything is one ``{ … }`` group, parsed before the first script runs, so aliases a script defines
    cannot change it. Each script sees no positional arguments; the options a script leaves on
    (``set -eux``) are turned off after it, and the dump's own stderr is discarded, so that values are
    never traced into the job log. A script's EXIT trap does not run: the shell it was made for would
    still be open.
    """
    lines = ["{", "builtin set +o posix +o errexit +o nounset +o xtrace", "builtin set --", _DUMP]
    lines.append("__ma_launch_dump start")
    for index, script in enumerate(scripts):
        lines.append(f"builtin printf '@begin {index}\\0' >&3")
        lines.append(f". {_quote(script.path)} 3>&-")
        lines.append(f"{{ __ma_launch_after {index} $?; }} 2>/dev/null")
    lines += ["builtin printf '@done\\0' >&3", "builtin trap - EXIT", "builtin exit 0", "}"]
    return "\n".join(lines) + "\n"


def _quote(word: str) -> str:
    return "'" + word.replace("'", "'\\''") + "'"


class _Stage:
    """What the channel said about one script (or the start): whether it began, its status, its dump
    (``None`` until complete)."""

    def __init__(self) -> None:
        self.began = False
        self.status: Optional[str] = None
        self.env: Optional[dict[str, str]] = None


def parse_records(data: bytes, count: int) -> tuple[_Stage, list[_Stage]]:
    """The start stage and one stage per script from the channel's records. A dump counts only when its
    ``@end`` record arrived with the right number of entries."""
    start = _Stage()
    stages = [_Stage() for _ in range(count)]

    def stage(tag: str) -> Optional[_Stage]:
        if tag == "start":
            return start
        return stages[int(tag)] if tag.isdigit() and int(tag) < count else None

    tokens = data.split(b"\0")[:-1]  # what follows the last NUL is an unfinished record
    current: Optional[dict[str, str]] = None
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if not token.startswith(b"@"):
            name, sep, value = token.partition(b"=")
            if current is not None and sep:
                current[os.fsdecode(name)] = os.fsdecode(value)
            continue
        kind, _, rest = os.fsdecode(token).partition(" ")
        if kind == "@fn":
            if current is not None and i < len(tokens):
                current[f"BASH_FUNC_{rest}%%"] = _exported_function(rest, os.fsdecode(tokens[i]))
            i += 1
            continue
        words = rest.split(" ")
        target = stage(words[0])
        if target is None:
            continue
        if kind == "@begin":
            target.began = True
        elif kind == "@status" and len(words) == 2:
            target.status = words[1]
        elif kind == "@dump":
            current = {}
        elif kind == "@end" and current is not None and len(words) == 2:
            if words[1] == str(len(current)):
                target.env = current
            current = None
    return start, stages


def _exported_function(name: str, definition: str) -> str:
    """The value bash gives ``BASH_FUNC_<name>%%`` in a child's environment for ``declare -f`` output."""
    head = f"{name} () \n{{"
    body = definition[len(head) :] if definition.startswith(head) else definition
    return "() {" + body.rstrip("\n")


def script_changes(
    scripts: Sequence[Script],
    environ: Mapping[str, str],
    cwd: str,
    *,
    strict: bool,
    timeout: float,
    runner: ScriptRunner,
) -> tuple[list[Change], list[str]]:
    """Source ``scripts`` in one bash (at most ``timeout`` seconds; 0: no limit) and return the variables
    each changed, attributed to its ``source``, plus warnings.

    A script that fails, or ends the shell (``exit``), is a warning (ConfigError 78 with ``strict``); the
    scripts after one that ended the shell had no effect. Errors whatever ``strict`` says: the deadline
    passed (TimeoutError_ 75, naming the script that was running), or the environment after a script could
    not be read (ConfigError 78): the launch never goes on with an environment it could not read.
    """
    if not scripts:
        return [], []
    try:
        output = runner(bash_program(scripts), environ, cwd, timeout)
    except UnavailableError:
        if strict:
            raise
        return [], ["activation scripts were not run: there is no bash (install bash)"]
    start, stages = parse_records(output.data, len(scripts))
    if start.env is None:
        if output.timed_out:
            raise _deadline("the activation shell (bash) did not start", timeout)
        problem = "the activation shell (bash) did not start; the activation scripts had no effect"
        if strict:
            raise ConfigError(problem, hint="check that bash works in this image")
        return [], [problem]
    warnings: list[str] = []
    changes: list[Change] = []
    previous = start.env
    for script, stage in zip(scripts, stages):
        after = _after(script, stage, output.timed_out, timeout, strict, warnings)
        if after is None:
            break
        changes += _difference(previous, after, script.source)
        previous = after
    return changes, warnings


def _after(
    script: Script, stage: _Stage, timed_out: bool, timeout: float, strict: bool, warnings: list[str]
) -> Optional[dict[str, str]]:
    """The environment after ``script``, or ``None`` when it ended the shell (a warning; an error with
    ``strict``); raises when the deadline passed or the environment could not be read."""
    if timed_out and stage.env is None:
        what = "did not finish" if stage.status is None else "was sourced, but the shell did not report on it"
        raise _deadline(f"activation script {script.path} {what}", timeout)
    if stage.status is None:
        if not stage.began:
            raise ConfigError(
                f"the activation shell stopped before activation script {script.path}; nothing was run",
                hint="was bash killed (out of memory)? try again, or check the scripts before it",
            )
        problem = (
            f"activation script {script.path} ended the shell (exit or exec); it and the scripts after it "
            "had no effect"
        )
        if strict:
            raise ConfigError(problem, hint="a sourced script must not call exit; use return")
        warnings.append(problem)
        return None
    if stage.env is None:
        raise ConfigError(
            f"the environment after activation script {script.path} could not be read; nothing was run",
            hint="the script may disable bash's builtins (enable -n) or stop the shell; fix the script",
        )
    if stage.status != "0":
        problem = f"activation script {script.path} failed (status {stage.status})"
        if strict:
            raise ConfigError(problem, hint="fix the script, or drop --strict-activation to go on")
        warnings.append(problem + "; the launch goes on")
    return stage.env


def _difference(before: Mapping[str, str], after: Mapping[str, str], source: str) -> list[Change]:
    return [
        Change(name, after.get(name), source, "script")
        for name in sorted(set(before) | set(after))
        if name not in SHELL_NOISE and before.get(name) != after.get(name)
    ]


def _deadline(what: str, timeout: float) -> TimeoutError_:
    return TimeoutError_(
        f"{what} within --activation-timeout {timeout:g} s; the activation shell was stopped",
        hint="fix the script (a sourced script must not wait for anything), or raise --activation-timeout",
    )
