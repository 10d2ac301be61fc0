"""Which values the launcher may show: the one masking rule for every output channel.

Training containers carry credentials in their environment and on their command lines, and job logs are
kept for weeks. Everything ma-launch prints about a launch (the explanation, warnings, errors, the JSON
plan, the ``# made with:`` comment of a baked script, ``--debug`` tracebacks, the supervisor's messages)
passes through this rule; masking changes what is shown, never what is executed. The one place values
appear as they are is the ``--dry-run`` line on stdout (and the command of a baked script): it is the
command itself, to be pasted or run.

The rule:

1. **Names.** A name is split into words at ``_``, ``-``, ``.`` and other separators and at camelCase
   boundaries (``AccessKeyId`` → ACCESS KEY ID, ``APIKey`` → API KEY), upper-cased. It is *secret* when one
   of its words is a secret word (:data:`SECRET_WORDS`: PASSWORD, PASSWD, PASS, PASSPHRASE, PWD, SECRET,
   TOKEN, PAT, CREDENTIAL(S), CREDS, AUTH, AUTHORIZATION, APIKEY, ACCESSKEY, SECRETKEY, PRIVATEKEY, KEY, AK,
   SK, SIGNATURE, COOKIE), or when a word ends in a long one run together (``dbpassword``, ``githubtoken``:
   :data:`SECRET_ENDINGS`) — unless its *last* word says the value is a path, a place, a size, a count or
   a switch (:data:`HARMLESS_LAST`: PATH, FILE, DIR, IP, HOST, PORT, URL, SIZE, COUNT, PARALLELISM,
   TIMEOUT, ENABLED, MODE…) or its *first* word says it is a number (MAX, MIN, NUM: ``MAX_TOKENS``).
   PWD and KEY count only next to another word (``DB_PWD``, ``OBS_KEY``): alone, ``PWD`` is the working
   directory and ``KEY`` a placeholder (``KEY=VALUE``). The value of a secret name is shown as ``********``.
2. **Arguments.** ``--NAME=VALUE``, ``-NAME=VALUE`` and ``NAME=VALUE`` with a secret NAME show the VALUE
   masked; ``--NAME`` (or ``-NAME``) with a secret NAME masks the next argument unless that one starts
   with ``--``. A one-letter option is never a secret name (``-p`` is not a password). In text (a ``-c``
   line, a message, a traceback) words are split at white space, quotes are honoured (``--password 'a b'``
   masks ``a b``) and ``'NAME': VALUE`` / ``NAME: VALUE`` pairs count as assignments too.
3. **URLs**, in any value, argument or text: ``scheme://user:password@host`` shows
   ``scheme://user:********@host``; the user part is masked too when it is an access key (object storage:
   ``obs://AK:SK@bucket`` → ``obs://********:********@bucket``) or stands alone (``https://TOKEN@host``;
   but ``ssh://git@host`` is a login name). Query parameters with a secret name are masked
   (``?X-Amz-Signature=…``).
4. Any other value is shown as it is; the rule applies to the value of every variable whatever its name
   (``HTTP_PROXY=http://user:********@proxy``).

No imports at all (the supervisor's error lines use it too), so no ``re``: the scanner is written out,
which is why this module is over 300 lines.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Optional

MASK = "********"

#: A name holding one of these words is secret.
SECRET_WORDS = frozenset(
    (
        "PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "PWD", "SECRET", "SECRETS", "TOKEN", "PAT", "CREDENTIAL",
        "CREDENTIALS", "CREDS", "AUTH", "AUTHORIZATION", "APIKEY", "ACCESSKEY", "SECRETKEY", "PRIVATEKEY",
        "KEY", "AK", "SK", "SIGNATURE", "COOKIE",
    )
)  # fmt: skip
#: A word that ends in one of these (words run together, ``dbpassword``) makes a name secret too.
SECRET_ENDINGS = (
    "PASSWORD", "PASSWD", "SECRET", "TOKEN", "CREDENTIALS", "CREDENTIAL", "APIKEY", "ACCESSKEY", "SECRETKEY",
    "PRIVATEKEY",
)  # fmt: skip
#: A name whose last word is one of these holds a path, a place, a size, a count or a switch: not secret.
HARMLESS_LAST = frozenset(
    (
        "PATH", "PATHS", "FILE", "FILES", "FILENAME", "DIR", "DIRS", "DIRECTORY", "FOLDER", "IP", "IPS",
        "ADDR", "ADDRESS", "HOST", "HOSTS", "HOSTNAME", "PORT", "URL", "URI", "ENDPOINT", "SIZE", "LEN",
        "LENGTH", "COUNT", "NUM", "LIMIT", "TIMEOUT", "TTL", "PARALLELISM", "ENABLED", "ENABLE", "DISABLED",
        "DISABLE", "FLAG", "MODE", "TYPE", "NAME",
    )
)  # fmt: skip
#: Secret words that say nothing alone: the name ``PWD`` is the working directory, ``KEY`` a placeholder.
ONLY_WITH_OTHERS = frozenset(("PWD", "KEY"))
#: A name whose first word is one of these is a number (``MAX_TOKENS``): not secret.
COUNT_FIRST = frozenset(("MAX", "MIN", "NUM"))
#: URL schemes whose user part is an access key: masked as well as the password.
KEY_SCHEMES = frozenset(("obs", "s3", "s3a", "s3n", "oss", "cos", "gs", "bos", "ks3"))
#: URL schemes whose lone user part (no password) is a login name: shown.
LOGIN_SCHEMES = frozenset(("ssh", "sftp", "scp", "rsync", "git+ssh", "ssh+git"))
#: Secrets shorter than this are not searched for in free text (``AUTH=1`` would blank every ``1``).
MIN_SCRUB = 4

_OPENERS = "'\"([{<"
_CLOSERS = "'\")]}>,;:."
_QUOTES = "'\""


# -- names ------------------------------------------------------------------------------------------------


def words_of(name: str) -> list[str]:
    """The words of ``name``, upper-cased: split at non-alphanumerics and camelCase boundaries."""
    words: list[str] = []
    current: list[str] = []
    for i, char in enumerate(name):
        if not char.isalnum():
            if current:
                words.append("".join(current))
                current = []
            continue
        if current and char.isupper():
            before = name[i - 1]
            after = name[i + 1] if i + 1 < len(name) else ""
            if before.islower() or before.isdigit() or (before.isupper() and after.islower()):
                words.append("".join(current))
                current = []
        current.append(char)
    if current:
        words.append("".join(current))
    return [word.upper() for word in words]


def is_secret(name: str) -> bool:
    """Whether the value of ``name`` (a variable, an option, a key) must not be shown (rule 1)."""
    words = words_of(name)
    if not words or words[-1] in HARMLESS_LAST or words[0] in COUNT_FIRST:
        return False
    if len(words) == 1 and words[0] in ONLY_WITH_OTHERS:
        return False
    return any(word in SECRET_WORDS or word.endswith(SECRET_ENDINGS) for word in words)


def _is_name(text: str) -> bool:
    """Whether ``text`` can be a variable or option name (``[A-Za-z_][A-Za-z0-9_.-]*``, any letters)."""
    return (
        bool(text) and (text[0].isalpha() or text[0] == "_") and all(c.isalnum() or c in "_.-" for c in text)
    )


# -- values, arguments and text ---------------------------------------------------------------------------


def shown(name: str, value: str) -> str:
    """The value of the variable ``name`` as the launcher may show it."""
    return MASK if is_secret(name) else mask_text(value)


def mask_text(text: str) -> str:
    """``text`` (a value, a message, a ``-c`` line, a traceback) with every secret the rule finds masked."""
    return _mask(text, False, None)[0]


def mask_argv(argv: Sequence[str], found: Optional[list[str]] = None) -> list[str]:
    """The words of ``argv`` as they may be shown, one for one (a masked value is the whole word).

    ``found`` collects the values that were masked."""
    out: list[str] = []
    pending = False
    for word in argv:
        if pending and not word.startswith("--"):
            _keep(found, word)
            out.append(MASK)
            pending = False
            continue
        masked, pending = _mask_argument(word, found)
        out.append(masked)
    return out


def _mask_argument(word: str, found: Optional[list[str]]) -> tuple[str, bool]:
    """One argv word: an option or assignment with a secret name masks the rest of the word."""
    dashes = len(word) - len(word.lstrip("-"))
    name, eq, value = word[dashes:].partition("=")
    if dashes <= 2 and _is_name(name) and (dashes == 0 or len(name) > 1) and is_secret(name):
        if eq:
            _keep(found, value)
            return word[: dashes + len(name) + 1] + MASK, False
        if dashes:
            return word, True
    return _mask(word, False, found)


def _keep(found: Optional[list[str]], value: str) -> None:
    if found is not None and value:
        found.append(value)


def _mask(text: str, pending: bool, found: Optional[list[str]]) -> tuple[str, bool]:
    """Mask ``text`` word by word. ``pending``: its first word is the value of a secret option given
    before it. Returns the text and whether its last word is a secret option waiting for its value."""
    if not pending and "=" not in text and ":" not in text and "-" not in text:
        return text, False
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            out.append(text[i:j])
            i = j
            continue
        end = _word_end(text, i)
        lead = _lead(text, i, end)
        if pending and not text.startswith("--", lead):
            value_at = lead - 1 if lead > i and text[lead - 1] in _QUOTES else lead
            piece, after = _masked_value(text, value_at, end, "", found)
            out.append(text[i:value_at] + piece)
            i, pending = after, False
            continue
        piece, i, pending = _mask_word(text, i, lead, end, found)
        out.append(piece)
    return "".join(out), pending


def _word_end(text: str, start: int) -> int:
    end = start
    while end < len(text) and not text[end].isspace():
        end += 1
    return end


def _lead(text: str, start: int, end: int) -> int:
    """Where a word starts after its opening brackets and quotes (``['--password',``)."""
    while start < end and text[start] in _OPENERS:
        start += 1
    return start


def _mask_word(
    text: str, start: int, lead: int, end: int, found: Optional[list[str]]
) -> tuple[str, int, bool]:
    """One word of text: (replacement, where the next word starts, whether a value is expected next)."""
    core_end = end
    while core_end > lead and text[core_end - 1] in _CLOSERS:
        core_end -= 1
    core = text[lead:core_end]
    quote = text[lead - 1] if lead > start and text[lead - 1] in _QUOTES else ""
    dashes = len(core) - len(core.lstrip("-"))
    name, eq, _ = core[dashes:].partition("=")
    one_letter = dashes and len(name) == 1
    # A plain word (not an option, an assignment or a ``NAME:`` key) has no value to mask, whatever its name.
    takes_value = eq or dashes or ":" in text[core_end:end]
    if takes_value and dashes <= 2 and _is_name(name) and not one_letter and is_secret(name):
        if eq:
            value_at = lead + dashes + len(name) + 1
            piece, after = _masked_value(text, value_at, end, quote, found)
            return text[start:value_at] + piece, after, False
        return text[start:end], end, True
    return _mask_urls(text[start:end], found), end, False


def _masked_value(text: str, start: int, end: int, quote: str, found: Optional[list[str]]) -> tuple[str, int]:
    """Mask the value that starts at ``start`` in the word ending at ``end``: a value in quotes up to its
    closing quote, even past white space (``'a b'``); in a word opened by ``quote`` (``'--password=x',``)
    up to that quote; else to the end of the word. Returns the replacement of ``text[start:after]`` and
    ``after``."""
    own = start < len(text) and text[start] in _QUOTES
    closing = text[start] if own else quote
    if closing:
        close = text.find(closing, start + 1 if own else start)
        if close != -1:
            _keep(found, text[start + 1 if own else start : close])
            after = max(end, _word_end(text, close))
            return (closing if own else "") + MASK + text[close:after], after
    _keep(found, text[start:end])
    return MASK, end


def _mask_urls(word: str, found: Optional[list[str]]) -> str:
    """``word`` with the credentials of every URL in it masked (rule 3)."""
    if "://" not in word:
        return word
    out: list[str] = []
    done = 0
    at = word.find("://")
    while at != -1:
        begin = at
        while begin > 0 and (word[begin - 1].isalnum() or word[begin - 1] in "+-."):
            begin -= 1
        scheme = word[begin:at].lower()
        start = at + 3
        following = word.find("://", start)
        stop = len(word) if following == -1 else following
        out.append(word[done:start])
        out.append(_mask_url_rest(word[start:stop], scheme, found))
        done = stop
        at = following
    out.append(word[done:])
    return "".join(out)


def _mask_url_rest(rest: str, scheme: str, found: Optional[list[str]]) -> str:
    """What follows ``scheme://`` (up to the next URL): userinfo and secret query parameters masked."""
    user_end = _userinfo_end(rest)
    head = ""
    if user_end >= 0:
        user, colon, password = rest[:user_end].partition(":")
        mask_user = scheme in KEY_SCHEMES or (not colon and scheme not in LOGIN_SCHEMES)
        if mask_user:
            _keep(found, user)
            user = MASK
        if colon and password:
            _keep(found, password)
            password = MASK
        head = user + colon + password + "@"
        rest = rest[user_end + 1 :]
    query = rest.find("?")
    if query == -1:
        return head + rest
    params = rest[query + 1 :].split("&")
    for k, param in enumerate(params):
        name, eq, value = param.partition("=")
        if eq and value and is_secret(name):
            _keep(found, value.split("#", 1)[0])
            params[k] = name + "=" + MASK + ("#" + value.split("#", 1)[1] if "#" in value else "")
    return head + rest[: query + 1] + "&".join(params)


def _userinfo_end(rest: str) -> int:
    """Index of the ``@`` that ends the userinfo of a URL's remainder, or -1: the last ``@`` before which
    the text can be userinfo (no ``/`` after an ``@``; a ``/`` only inside a password, not after a port)."""
    at = rest.rfind("@")
    while at > 0:
        candidate = rest[:at]
        if _can_be_userinfo(candidate):
            return at
        at = rest.rfind("@", 0, at)
    return -1


def _can_be_userinfo(text: str) -> bool:
    first_at = text.find("@")
    if first_at != -1 and "/" in text[first_at:]:
        return False
    if "?" in text or "#" in text:
        return False
    slash = text.find("/")
    if slash == -1:
        return True
    colon = text.find(":")
    return 0 < colon < slash and not text[colon + 1 : slash].isdigit()


# -- text that may hold anything (tracebacks) -------------------------------------------------------------


def secrets_in(environ: Mapping[str, str], argv: Sequence[str]) -> list[str]:
    """Every value the rule masks in ``environ`` and ``argv``, long enough to be searched for in free
    text, longest first (with its ``repr`` form when that differs)."""
    found: list[str] = []
    for name, value in environ.items():
        if is_secret(name):
            found.append(value)
        else:
            _mask(value, False, found)
    mask_argv(argv, found)
    forms = set()
    for value in found:
        if len(value) >= MIN_SCRUB and value != MASK:
            forms.add(value)
            forms.add(repr(value)[1:-1])
    return sorted(forms, key=lambda v: (-len(v), v))


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of the known ``secrets`` replaced by the mask, then the rule applied:
    for text that can hold a value in any form (a traceback shows reprs, messages, chained errors)."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return mask_text(text)
