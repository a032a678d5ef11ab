"""components/templating.py: each kind of template turns setting values into data, never code."""
from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import jinja2
import pytest
import yaml
from markupsafe import Markup

from components import templating
from components.templating import (TEMPLATES, ShellCode, UnsafeConfigValue, environment_for,
                                   shell_quote, words, yaml_document)

HOSTILE = ["$(:>MARKER)", "`:>MARKER`", ";:>MARKER", "\n:>MARKER", "'", '"', "\\", "a b",
           "*", "$HOME", "then", "", "#x", "x\ty", "'$(:>MARKER)'", '"$(:>MARKER)"']


def shell(source: str, **context) -> str:
    return templating._SHELL.from_string(source).render(**context)


def bash(script: str, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path)


@pytest.mark.parametrize("value", HOSTILE)
def test_a_shell_value_is_one_word_whatever_it_holds(value, tmp_path):
    """Assigned, passed as arguments and spliced into an array: the value comes back intact."""
    script = shell("set -euo pipefail\nv={{ v }}\nprintf '%s\\0' \"$v\" {{ v }}\n"
                   "a=({{ list | words }})\nprintf '%s\\0' \"${a[@]}\"\n",
                   v=value, list=[value, "x", value])
    result = bash(script, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\0")[:-1] == [value, value, value, "x", value]
    assert not (tmp_path / "MARKER").exists()


def test_plain_words_stay_bare_and_reserved_words_are_quoted():
    assert shell("{{ a }} {{ b }} {{ c }}", a="10.20.0.1", b="/etc/x.conf", c="then") == \
        "10.20.0.1 /etc/x.conf 'then'"
    assert shell_quote("it's") == "'it'\"'\"'s'"


def test_the_only_opt_out_is_shell_code_from_words():
    assert isinstance(words(["a b"]), ShellCode) and words(["a b", "c"]) == "'a b' c"
    # A plain str subclass or a Markup does not opt out: only ShellCode does.
    assert shell("{{ v }}", v=Markup("$(x)")) == "'$(x)'"
    assert shell("{{ v }}", v=ShellCode("$(x)")) == "$(x)"
    with pytest.raises(TypeError):
        words("a string is not a list")
    with pytest.raises(TypeError):
        shell("{{ v }}", v=None)
    with pytest.raises(jinja2.UndefinedError):
        shell("{{ missing }}")
    assert "shquote" not in templating._SHELL.filters


@pytest.mark.parametrize("value", ["a b", "x\ny", "a#b", "a'b", 'a"b', "a\\b", "", "\x07", "\x7f"])
def test_a_config_template_refuses_a_value_that_is_not_one_plain_word(value):
    environment = environment_for("haproxy.cfg.j2")
    with pytest.raises(UnsafeConfigValue) as raised:
        environment.from_string("bind {{ v }}:80\n", globals={}).render(v=value)
    assert repr(value) in str(raised.value)


def test_a_config_template_names_itself_when_it_refuses():
    cluster = SimpleNamespace(keepalive_time="1 2", keepalive_intvl=1, keepalive_probes=1,
                              haproxy_layout="clone")
    with pytest.raises(UnsafeConfigValue, match=r"templates/cluster-sysctl\.conf\.j2: '1 2'"):
        templating.render("cluster-sysctl.conf.j2", settings=SimpleNamespace(cluster=cluster))


def test_xml_templates_are_autoescaped_and_yaml_is_never_a_template():
    assert environment_for("shared-disk.xsl.j2").from_string("<a>{{ v }}</a>").render(
        v="\"'<&") == "<a>&#34;&#39;&lt;&amp;</a>"
    with pytest.raises(ValueError, match="dumped"):
        environment_for("cloud-init/user-data.yaml.j2")
    assert not list(TEMPLATES.rglob("*.yaml.j2"))


@pytest.mark.parametrize("value", ["key: value", "- item", "\n#cloud-config", "{a: b}", "&x", "*x",
                                   "!!python/object:os.system", "'", '"', "a\nb: c", "0644",
                                   "yes", "null"])
def test_yaml_documents_keep_every_value_as_data(value):
    data = {"name": value, "list": [value], "nested": {value or "k": {"content": f"{value}\n"}}}
    text = yaml_document(data, first_line="#cloud-config")
    assert text.startswith("#cloud-config\n")
    assert yaml.safe_load(text) == data


# ---- every shell template, statically ---------------------------------------------------------

def expression_contexts(source: str) -> list[tuple[int, str]]:
    """(line, context) of every `{{ }}` not standing in plain shell text: inside single or double
    quotes, a comment or a here-document (where quoting cannot protect it)."""
    found = []
    state, heredoc, i, line = "code", None, 0, 1
    while i < len(source):
        rest = source[i:]
        if rest.startswith("{%") or rest.startswith("{##"):
            end = source.index("%}" if rest.startswith("{%") else "##}", i)
            line += source[i:end].count("\n")
            i = end + 2
            continue
        if rest.startswith("{{"):
            if state != "code":
                found.append((line, state))
            i = source.index("}}", i) + 2
            continue
        char = source[i]
        if char == "\n":
            line += 1
            if state == "comment":
                state = "code"
            elif heredoc is not None and state == "code":
                state, heredoc_end = "heredoc", heredoc
                heredoc = None
            elif state == "heredoc":
                body_line = source[i + 1:].split("\n", 1)[0]
                if body_line.strip() == heredoc_end:
                    state = "code"
        elif state == "code":
            previous = source[i - 1] if i else "\n"
            if char == "\\":
                i += 1
            elif char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char == "#" and previous in " \t\n;(":
                state = "comment"
            elif rest.startswith("<<<"):
                i += 2  # a here-string: its word is ordinary shell text
            elif rest.startswith("<<"):
                match = re.match(r"<<-?\s*(['\"]?)(\w+)\1", rest)
                heredoc = match.group(2)
        elif state == "single" and char == "'":
            state = "code"
        elif state == "double":
            if char == "\\":
                i += 1
            elif char == '"':
                state = "code"
        i += 1
    return found


def test_the_scanner_finds_expressions_in_quotes_comments_and_heredocs():
    assert expression_contexts('a={{ x }}\n"$b"{{ y }}.c\n') == []
    assert expression_contexts('echo "{{ x }}"\n# {{ y }}\ncat <<E\n{{ z }}\nE\n'
                               "echo '{{ w }}'\n") == \
        [(1, "double"), (2, "comment"), (4, "heredoc"), (6, "single")]


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.glob("*.sh.j2")))
def test_no_shell_template_puts_a_value_where_quoting_cannot_protect_it(template):
    """No `{{ }}` inside "...", '...', comments or here-documents, and no ad-hoc quoting."""
    source = (TEMPLATES / template).read_text()
    assert expression_contexts(source) == []
    assert "shquote" not in source and "| safe" not in source


@pytest.mark.parametrize("template", sorted(str(p.relative_to(TEMPLATES))
                                            for p in TEMPLATES.rglob("*.j2")))
def test_no_template_writes_a_comment_meant_for_jinja_into_its_output(template):
    """Comments are `{## ##}` here (shell has `${#`): a `{# #}` one would land in the file."""
    rendered_comment = re.compile(r"(?<![$#{]){#(?!#)")
    assert not rendered_comment.search((TEMPLATES / template).read_text())
