"""testbed validate: the catalog table, --lint, --summary (through the CLI's main)."""

from __future__ import annotations

import pytest

from testbed.cli import main
from testbed.cli.validate_many import looks_like_cloudformation, stand_in

VALID = """\
Resources:
  VPC:
    Type: AWS::EC2::VPC
    Properties: {CidrBlock: 10.0.0.0/16}
  Subnet:
    Type: AWS::EC2::Subnet
    Properties: {VpcId: !Ref VPC, CidrBlock: 10.0.1.0/24, AvailabilityZone: us-east-1a}
  Role:
    Type: AWS::IAM::Role
    Properties: {AssumeRolePolicyDocument: {Version: "2012-10-17", Statement: []}}
"""
INVALID = VALID + "  Group:\n    Type: AWS::CloudFormation::Stack\n"
NEEDS = "Parameters:\n  Env: {Type: String, AllowedValues: [prod, dev]}\n" + VALID
UNFIT = "Parameters:\n  Fs: {Type: String, AllowedPattern: '^fs-[0-9a-f]{17}$'}\n" + VALID


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    def write(name: str, text: str) -> str:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return str(path)

    return write


def test_one_template_prints_what_the_lab_does_with_each_type(capsys, files):
    code, out, _ = run(capsys, files("t.yaml", VALID))
    assert code == 0
    lines = out.splitlines()
    assert any(line.split()[1:3] == ["AWS::EC2::VPC", "emulated"] for line in lines[1:4])
    role = next(line for line in lines if "AWS::IAM::Role" in line)
    assert "inert" in role
    assert "identities and permissions" in role
    assert "2 emulated, 1 inert" in out
    assert "valid — 3 resources" in out
    assert "inert (1, created with a 'not emulated' event): Role" in out


def test_an_invalid_template_still_shows_the_table(capsys, files):
    path = files("t.yaml", INVALID)
    code, out, err = run(capsys, path)
    assert code == 2
    group = next(line for line in out.splitlines() if "CloudFormation::Stack" in line)
    assert "refused" in group
    assert "nested stacks" in group
    assert f"{path}:12: Group: AWS::CloudFormation::Stack is an AWS type" in err


def test_several_templates_need_summary(capsys, files):
    code, _, err = run(capsys, files("a.yaml", VALID), files("b.yaml", VALID))
    assert code == 2
    assert "add --summary" in err


def test_summary_of_a_directory(capsys, files, tmp_path):
    files("a/valid.yaml", VALID)
    files("a/b/broken.template", INVALID)
    files("needs.yml", NEEDS)
    files("unfit.template", UNFIT)
    files("notes.yaml", "title: not a template\n")
    files("readme.md", "Resources: AWS::EC2::VPC\n")  # not a template suffix
    code, out, _ = run(capsys, str(tmp_path), "--summary")
    assert code == 2
    lines = out.splitlines()
    assert lines[0] == f"{tmp_path}/a/b/broken.template: invalid: line 12: Group: " + (
        "AWS::CloudFormation::Stack is an AWS type the lab does not emulate: "
        "nested stacks are not supported; bring up each template as its own stack and join "
        "them with Outputs Export / Fn::ImportValue"
    )
    assert lines[1] == f"{tmp_path}/a/valid.yaml: valid (3 resources; 1 inert)"
    assert lines[2] == (
        f"{tmp_path}/needs.yml: valid with parameters (needs values for: Env; 3 resources; 1 inert)"
    )
    assert lines[3] == (
        f"{tmp_path}/unfit.template: needs values for: Fs (the lab's stand-ins do not fit Fs)"
    )
    assert lines[4] == (
        "4 templates: 1 valid, 1 valid with parameters, 1 needs parameters, 1 invalid "
        "(skipped 1 files that are not CloudFormation)"
    )


def test_summary_exit_code_is_0_when_all_are_valid(capsys, files):
    code, out, _ = run(capsys, files("a.yaml", VALID), files("b.yaml", NEEDS), "--summary")
    assert code == 0
    assert out.splitlines()[-1].startswith("2 templates: 1 valid, 1 valid with parameters")


def test_summary_counts_every_error(capsys, files):
    text = INVALID + "  Other:\n    Type: AWS::EC2::Instanse\n"
    _, out, _ = run(capsys, files("t.yaml", text), "--summary")
    assert out.splitlines()[0].endswith("(+1 more)")


def test_summary_refuses_param(capsys, files):
    code, _, err = run(capsys, files("a.yaml", VALID), "--summary", "--param", "A=1")
    assert code == 2
    assert "--param is for one template" in err


def test_lint_findings_do_not_change_the_exit_code(capsys, files):
    code, out, _ = run(capsys, files("t.yaml", VALID), "--lint")
    assert code == 0
    assert "cfn-lint: 1 warning" in out
    assert "W3010 line 7: Avoid hardcoding availability zones 'us-east-1a'" in out


def test_lint_on_an_invalid_template(capsys, files):
    code, out, _ = run(capsys, files("t.yaml", INVALID), "--lint")
    assert code == 2
    assert "cfn-lint: 1 error, 1 warning" in out
    assert "E3003 line 11: 'TemplateURL' is a required property" in out


def test_summary_with_lint_adds_the_counts(capsys, files):
    code, out, _ = run(capsys, files("t.yaml", VALID), "--summary", "--lint")
    assert code == 0
    assert out.splitlines()[0].endswith("valid (3 resources; 1 inert) — cfn-lint: 1 warning")


def test_summary_survives_a_lab_failure(capsys, files, monkeypatch):
    def broken(path, region):
        raise KeyError("boom")

    monkeypatch.setattr("testbed.cli.validate.judge", broken)
    code, out, _ = run(capsys, files("t.yaml", VALID), "--summary")
    assert code == 2
    assert "t.yaml: invalid: the lab failed on this template (KeyError: 'boom')" in out


def test_help_teaches(capsys):
    with pytest.raises(SystemExit):
        main(["validate", "--help"])
    out = capsys.readouterr().out
    for fragment in ("examples:", "--summary", "--lint", "inert", "needs values for"):
        assert fragment in out


@pytest.mark.parametrize(
    ("decl", "value"),
    [
        ({"Type": "String", "AllowedValues": ["b", "a"]}, "b"),
        ({"Type": "Number", "MinValue": 5}, "5"),
        ({"Type": "Number"}, "1"),
        ({"Type": "AWS::EC2::KeyPair::KeyName"}, "lab-key"),
        ({"Type": "AWS::EC2::Image::Id"}, "ami-0abcdef1234567890"),
        ({"Type": "List<AWS::EC2::AvailabilityZone::Name>"}, "eu-west-1a,eu-west-1b,eu-west-1c"),
        ({"Type": "String", "AllowedPattern": r"^\d+\.\d+\.\d+\.\d+/\d+$"}, "10.0.0.0/16"),
        ({"Type": "String", "MinLength": 6}, "labxxx"),
    ],
)
def test_stand_in_values(decl, value):
    assert stand_in(decl, "eu-west-1") == value


def test_what_looks_like_cloudformation():
    assert looks_like_cloudformation(VALID)
    assert looks_like_cloudformation('{"Resources": {"A": {"Type": "AWS::SNS::Topic"}}}')
    assert not looks_like_cloudformation("Resources: none\n")
    assert not looks_like_cloudformation("name: x\nType: AWS::EC2::VPC\n")


def test_az_parameters_get_different_stand_ins():
    from testbed.cli.validate_many import stand_in

    decl = {"Type": "AWS::EC2::AvailabilityZone::Name"}
    assert [stand_in(decl, "eu-west-1", i) for i in range(3)] == [
        "eu-west-1a",
        "eu-west-1b",
        "eu-west-1c",
    ]
