"""The template engine: CloudFormation-style YAML/JSON in, resolved values out.

yaml_loader reads text into line-tracking trees (short forms become long forms); sections,
parameters and conditions check their sections; intrinsics evaluates Ref/Fn::*; references
finds who uses whom and orders resources. testbed.model builds the stack model on top.
"""
