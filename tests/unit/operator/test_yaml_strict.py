"""fti local reads YAML as kubectl's go-yaml does (api/yaml_strict.py), and the RE2 check."""

from __future__ import annotations

import pytest

from fti_operator.api.regex import regex_problem
from fti_operator.api.yaml_strict import YamlProblem, load_documents


@pytest.mark.parametrize(
    "text, value",
    [
        ("0x1F", 31),
        ("017", 15),
        ("0o17", 15),
        ("-12", -12),
        ("1_000", 1000),
        ("08", 8.0),  # not octal: go-yaml falls back to a float
        ("1:20", "1:20"),  # no sexagesimal (PyYAML's YAML 1.1 says 80)
        ("1.5", 1.5),
        ("1e3", 1000.0),
        ("2026-09-01", "2026-09-01"),  # timestamps stay text; the schema's date-time decides
        ("y", True),
        ("n", False),
        ("off", False),
        ("99999999999999999999999", 1e23),  # beyond int64: a float, as JSON makes it
    ],
)
def test_scalars_as_go_yaml_reads_them(text, value):
    [(_, doc, problems)] = list(load_documents(f"a: {text}"))
    assert doc == {"a": value} and type(doc["a"]) is type(value) and problems == []


def test_duplicate_key_names_both_lines():
    with pytest.raises(YamlProblem) as info:
        list(load_documents("a: 1\nb: 2\na: 3\n"))
    assert "duplicate key 'a' (first at line 1)" in str(info.value) and info.value.line == 3


def test_modest_aliases_are_fine_and_recursive_ones_are_not():
    [(_, doc, _)] = list(load_documents("base: &b {x: 1}\nagain: *b\n"))
    assert doc == {"base": {"x": 1}, "again": {"x": 1}}
    with pytest.raises(YamlProblem):
        list(load_documents("a: &a [*a]\n"))


def test_python_tags_are_refused():
    with pytest.raises(YamlProblem):
        list(load_documents("a: !!python/object/apply:os.system ['true']\n"))


def test_document_numbers_count_empty_documents():
    docs = list(load_documents("---\na: 1\n---\n---\nb: .nan\n"))
    assert [(n, p) for n, _, p in docs] == [
        (1, []),
        (3, [("b", "nan is not a number JSON can carry (NaN and infinities are refused)")]),
    ]


@pytest.mark.parametrize(
    "pattern, problem",
    [
        ("^[A-Z]{3}$", None),
        ("^(?P<code>[a-z]+)-[0-9]+$", None),
        (r"[(?=]x\(?!", None),  # inside a class or escaped: literals
        ("^(?=a)", "lookahead"),
        ("(?<!a)b", "lookbehind"),
        (r"(a)\1", "backreference"),
        ("(?P<x>a)(?P=x)", "backreference"),
        ("a++", "possessive"),
        ("(?>a)", "atomic"),
        ("[a-z", "does not compile"),
    ],
)
def test_regexes_in_the_re2_subset(pattern, problem):
    found = regex_problem(pattern)
    assert (found is None) if problem is None else (problem in (found or "")), found
