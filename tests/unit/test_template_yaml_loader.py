"""Reading YAML and JSON templates: short forms, line numbers, syntax errors."""

from __future__ import annotations

import json

import pytest

from testbed.errors import BadInput
from testbed.template.nodes import LDict, LList
from testbed.template.yaml_loader import load_text

SHORT_FORMS = [
    ("!Ref Env", {"Ref": "Env"}),
    ("!Condition IsProd", {"Condition": "IsProd"}),
    ("!Sub 'a-${Env}'", {"Fn::Sub": "a-${Env}"}),
    ("!Sub ['a-${X}', {X: 1}]", {"Fn::Sub": ["a-${X}", {"X": 1}]}),
    ("!GetAtt VPC.CidrBlock", {"Fn::GetAtt": ["VPC", "CidrBlock"]}),
    ("!GetAtt LB.Attr.With.Dots", {"Fn::GetAtt": ["LB", "Attr.With.Dots"]}),
    ("!GetAtt [VPC, CidrBlock]", {"Fn::GetAtt": ["VPC", "CidrBlock"]}),
    ("!Join [',', [a, b]]", {"Fn::Join": [",", ["a", "b"]]}),
    ("!Select [0, [a, b]]", {"Fn::Select": [0, ["a", "b"]]}),
    ("!Split [',', 'a,b']", {"Fn::Split": [",", "a,b"]}),
    ("!If [C, a, b]", {"Fn::If": ["C", "a", "b"]}),
    ("!Base64 hello", {"Fn::Base64": "hello"}),
    ("!GetAZs ''", {"Fn::GetAZs": ""}),
    ("!Cidr [10.0.0.0/16, 2, 8]", {"Fn::Cidr": ["10.0.0.0/16", 2, 8]}),
    ("!FindInMap [M, a, b]", {"Fn::FindInMap": ["M", "a", "b"]}),
    ("!Equals [a, b]", {"Fn::Equals": ["a", "b"]}),
    ("!And [!Condition A, !Condition B]", {"Fn::And": [{"Condition": "A"}, {"Condition": "B"}]}),
    ("!Or [!Condition A, !Condition B]", {"Fn::Or": [{"Condition": "A"}, {"Condition": "B"}]}),
    ("!Not [!Condition A]", {"Fn::Not": [{"Condition": "A"}]}),
    ("!Select [1, !GetAZs '']", {"Fn::Select": [1, {"Fn::GetAZs": ""}]}),
]


@pytest.mark.parametrize(("short", "long"), SHORT_FORMS)
def test_short_forms_become_long_forms(short, long):
    doc = load_text(f"Value: {short}\n", "t.yaml")
    assert doc["Value"] == long


def test_lines_are_kept_for_mappings_sequences_and_keys():
    doc = load_text("A: 1\nB:\n  C: [x,\n    y]\n  D:\n    - 1\n    - 2\n", "t.yaml")
    assert isinstance(doc, LDict)
    assert doc.line == 1
    assert doc.lines == {"A": 1, "B": 2}
    assert doc["B"].lines == {"C": 3, "D": 5}
    assert isinstance(doc["B"]["D"], LList)
    assert doc["B"]["D"].lines == [6, 7]
    assert doc["B"]["C"].lines == [3, 4]


def test_short_form_keeps_its_line():
    doc = load_text("A: 1\nB: !Ref X\n", "t.yaml")
    assert doc["B"].line == 2


def test_dates_and_versions_stay_text():
    doc = load_text("AWSTemplateFormatVersion: 2010-09-09\nX: 2010-13-45\n", "t.yaml")
    assert doc["AWSTemplateFormatVersion"] == "2010-09-09"
    assert doc["X"] == "2010-13-45"


def test_merge_keys_work_and_explicit_keys_win():
    doc = load_text("base: &b {A: 1, B: 2}\nx:\n  <<: *b\n  B: 3\n", "t.yaml")
    assert doc["x"] == {"A": 1, "B": 3}


def test_json_template_with_tabs_and_line_numbers():
    text = '{\n\t"Resources": {\n\t\t"A": {"Type": "x"},\n\t\t"B": [1,\n\t\t 2]\n\t}\n}\n'
    doc = load_text(text, "t.json")
    assert json.loads(text) == doc
    assert doc.lines["Resources"] == 2
    assert doc["Resources"].lines == {"A": 3, "B": 4}
    assert doc["Resources"]["B"].lines == [4, 5]


def test_json_with_tabs_in_a_yaml_named_file_falls_back_to_json():
    doc = load_text('{\n\t"A": {"Ref": "B"},\n\t"C": [1, 2]\n}\n', "t.yaml")
    assert doc == {"A": {"Ref": "B"}, "C": [1, 2]}
    assert doc.lines == {"A": 2, "C": 3}


def test_json_without_tabs_goes_through_yaml():
    doc = load_text('{"A": {"Ref": "B"}, "C": [1, 2]}', "t.json")
    assert doc == {"A": {"Ref": "B"}, "C": [1, 2]}


@pytest.mark.parametrize(
    ("text", "filename", "fragments", "line"),
    [
        ("A: 1\nA: 2\n", "t.yaml", ["duplicate key 'A'", "first given on line 1"], 2),
        ('{\n\t"A": 1,\n\t"A": 2\n}', "t.json", ["duplicate key 'A'"], 3),
        ("A: !Rf x\n", "t.yaml", ["unknown tag !Rf", "did you mean !Ref?"], 1),
        ("A: !!binary aGk=\n", "t.yaml", ["!!binary is not supported"], 1),
        ("A: !!python/object:os.system x\n", "t.yaml", ["unknown tag"], 1),
        ("A: 1\nB: [1, 2\n", "t.yaml", ["YAML syntax error"], None),
        ("A:\n\tB: 1\n", "t.yaml", ["YAML syntax error", "tab"], 2),
        ('{\n\t"A": 1,\n\t"B": \n}', "t.json", ["JSON syntax error"], 4),
        ("x: &a [*a]\n", "t.yaml", ["recursive"], 1),
        ("", "t.yaml", ["the template is empty"], 1),
        ("- a\n- b\n", "t.yaml", ["must be a mapping of sections"], 1),
        ("? [a, b]\n: c\n", "t.yaml", ["mapping key must be plain text"], 1),
        ("--- {}\n--- {}\n", "t.yaml", ["YAML syntax error"], 2),
    ],
)
def test_syntax_errors_name_file_and_line(text, filename, fragments, line):
    with pytest.raises(BadInput) as info:
        load_text(text, filename)
    shown = str(info.value)
    for fragment in fragments:
        assert fragment in shown
    assert shown.startswith(filename)
    if line is not None:
        assert info.value.line == line, shown


def test_byte_order_mark_is_ignored():
    assert load_text("\ufeffA: 1\n", "t.yaml") == {"A": 1}
