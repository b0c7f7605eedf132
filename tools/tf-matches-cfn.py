#!/usr/bin/env python3
"""Check that the Terraform configuration (deploy/terraform) equals the CloudFormation templates
(deploy/cloudformation/autobackup-{replica,primary}.yaml), resource by resource.

    tools/tf-matches-cfn.py [--tf-dir DIR] [--cfn-dir DIR] [--show LOGICAL_ID]...

(--show prints every normalized setting of a resource on both sides, equal ones too.)

The templates are generated from fixtures/topology.toml (`harness template`); the Terraform is
written by hand to mirror them. This script builds one normalized model of each side and
compares them setting by setting:

- CloudFormation: both templates, read with PyYAML (their intrinsics are in long form:
  {"Ref": ..}, {"Fn::Sub": ..}, {"Fn::GetAtt": [..]}, {"Fn::If": ..}).
- Terraform: every .tf file of the root module and of the local modules it calls, read with
  hcl2 (bc-python-hcl2 0.4, checkov's fork of python-hcl2: the shape of its output is what
  this script reads), then evaluated symbolically: module
  inputs and outputs, locals, for_each / count instances, for-expressions, jsonencode(), merge(),
  concat(), flatten(), join() and conditionals are resolved; provider v5's per-concern S3
  resources (versioning, encryption, public access block, lifecycle, replication,
  notification) are folded into their bucket and each aws_cloudwatch_event_target into its rule,
  as CloudFormation has them inline.

Both sides are translated to CloudFormation's property names. Values are normalized into common
tokens: template parameters and Terraform variables become {var:<snake_name>} (AWS::Region becomes
{var:primary_region} or {var:replica_region} by template, data.aws_caller_identity's account_id
and AWS::AccountId become {account}); a reference to another resource becomes the string it
stands for when that string follows from the resource's name (a bucket's, queue's, role's,
topic's, rule's, function's name or ARN), otherwise {ref:<logical-token>.<attribute>} (e.g. a key's
ARN: {ref:sqs-key.arn} for both `Fn::GetAtt [SqsKey, Arn]` and `aws_kms_key.sqs.arn`). IAM
Action / Resource / Principal / Condition values are compared as sets, statements by Sid (or
position). Conditions are compared as expressions (`"{var:artifact_bucket}" != ""` for both
CloudFormation's DeployFunctions and `count = var.artifact_bucket != "" ? 1 : 0`).
DeletionPolicy/UpdateReplacePolicy Retain is `lifecycle { prevent_destroy = true }`; a
resource's DependsOn is its depends_on plus the depends_on of the module outputs its attributes
go through; Metadata.checkov.skip is the `#checkov:skip=<id>:<comment>` comments in the block
(and in the blocks folded into it), compared id by id, comment by comment, exactly;
AWS::IAM::RolePolicy and an AWS::IAM::Policy on Roles are both aws_iam_role_policy.

Tags: a resource's `tags` are compared with its Tags in the template (the templates tag only the
buckets). The stacks' tags, which CloudFormation gives to every resource of a stack and which
are given when a stack is deployed (not in the templates), are the providers' default_tags:
they are not compared per resource, they must be the same in every provider, and the summary
notes them. The ManagedBy tag is one of them, so `managed_by` is a variable without a template
parameter. A provider setting other than alias, region and default_tags is a difference.

Every difference is printed as `<resource>: <setting>: cloudformation=<..> terraform=<..>`, then
one summary line. A setting that either side has and the other has not is a difference, as is
a Terraform attribute this script does not know how to translate (so nothing is skipped in
silence), a CloudFormation resource without a Terraform counterpart and the reverse (the
counterparts are the MAPPING table below). Exit status 0: equal; 1: differences; 2: could not
read or evaluate the inputs.

Not compared: descriptions of parameters/variables and outputs; explicit depends_on of the
folded S3 sub-resources (ordering only Terraform needs: replication after versioning).
"""

import argparse
import datetime
import glob
import json
import os
import re
import sys

try:
    import hcl2
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit(
        "tf-matches-cfn: cannot import hcl2 (the HCL parser): run it with the python of the venv "
        "engines/install-cfn-tools.sh prints (checkov brings bc-python-hcl2), or "
        "pip install bc-python-hcl2 pyyaml"
    )
try:
    import yaml
except ImportError:  # pragma: no cover
    sys.exit("tf-matches-cfn: cannot import yaml: pip install pyyaml")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

TEMPLATES = (("replica", "autobackup-replica.yaml"), ("primary", "autobackup-primary.yaml"))

# ------------------------------------------------------------------------------------------
# The counterparts: CloudFormation logical id -> Terraform resource address (instance).

CATEGORIES = ("documents", "media", "database")


def _mapping():
    m = {}
    for c in CATEGORIES:
        cc = c.capitalize()
        m[cc + "ReplicaBucket"] = 'module.s3_backup_buckets.aws_s3_bucket.replica["%s"]' % c
        m[cc + "ReplicaBucketPolicy"] = 'module.s3_backup_buckets.aws_s3_bucket_policy.replica["%s"]' % c
        m[cc + "PrimaryBucket"] = 'module.s3_backup_buckets.aws_s3_bucket.primary["%s"]' % c
        m[cc + "PrimaryBucketPolicy"] = 'module.s3_backup_buckets.aws_s3_bucket_policy.primary["%s"]' % c
        m[cc + "ReplicationRole"] = 'module.iam.aws_iam_role.replication["%s"]' % c
        m[cc + "ReplicationPolicy"] = 'module.iam.aws_iam_role_policy.replication["%s"]' % c
    m.update({
        "AlertLedgerBucket": "module.s3_backup_buckets.aws_s3_bucket.alert_ledger",
        "AlertLedgerBucketPolicy": "module.s3_backup_buckets.aws_s3_bucket_policy.alert_ledger",
        "ReplicaKey": "module.kms.aws_kms_key.replica",
        "ReplicaKeyAlias": "module.kms.aws_kms_alias.replica",
        "S3Key": "module.kms.aws_kms_key.s3",
        "S3KeyAlias": "module.kms.aws_kms_alias.s3",
        "SqsKey": "module.kms.aws_kms_key.sqs",
        "SqsKeyAlias": "module.kms.aws_kms_alias.sqs",
        "SnsKey": "module.kms.aws_kms_key.sns",
        "SnsKeyAlias": "module.kms.aws_kms_alias.sns",
        "ValidatorRole": "module.iam.aws_iam_role.validator",
        "ValidatorPolicy": "module.iam.aws_iam_role_policy.validator",
        "NotifierRole": "module.iam.aws_iam_role.notifier",
        "NotifierPolicy": "module.iam.aws_iam_role_policy.notifier",
        "ValidationQueue": "module.sqs.aws_sqs_queue.validation",
        "ValidationDlq": "module.sqs.aws_sqs_queue.validation_dlq",
        "FailureQueue": "module.sqs.aws_sqs_queue.failure",
        "FailureDlq": "module.sqs.aws_sqs_queue.failure_dlq",
        "EventsDlq": "module.sqs.aws_sqs_queue.events_dlq",
        "ValidationQueuePolicy": "module.sqs.aws_sqs_queue_policy.validation",
        "EventsDlqPolicy": "module.sqs.aws_sqs_queue_policy.events_dlq",
        "ValidationDlqDepthAlarm": 'module.sqs.aws_cloudwatch_metric_alarm.dlq_depth["validation-dlq"]',
        "EventsDlqDepthAlarm": 'module.sqs.aws_cloudwatch_metric_alarm.dlq_depth["events-dlq"]',
        "FailureDlqDepthAlarm": 'module.sqs.aws_cloudwatch_metric_alarm.dlq_depth["failure-dlq"]',
        "FailureTopic": "module.sns.aws_sns_topic.failure",
        "AlertEmailSubscription": "module.sns.aws_sns_topic_subscription.alert_email[0]",
        "UploadRule": "module.eventbridge.aws_cloudwatch_event_rule.upload",
        "ValidatorLogGroup": "module.lambda_functions.aws_cloudwatch_log_group.validator[0]",
        "ValidatorFunction": "module.lambda_functions.aws_lambda_function.validator[0]",
        "ValidatorValidationQueueMapping":
            "module.lambda_functions.aws_lambda_event_source_mapping.validator[0]",
        "NotifierLogGroup": "module.lambda_functions.aws_cloudwatch_log_group.notifier[0]",
        "NotifierFunction": "module.lambda_functions.aws_lambda_function.notifier[0]",
        "NotifierFailureQueueMapping":
            'module.lambda_functions.aws_lambda_event_source_mapping.notifier["failure-queue"]',
        "NotifierValidationDlqMapping":
            'module.lambda_functions.aws_lambda_event_source_mapping.notifier["validation-dlq"]',
        "NotifierEventsDlqMapping":
            'module.lambda_functions.aws_lambda_event_source_mapping.notifier["events-dlq"]',
        "NotifierFailureDlqMapping":
            'module.lambda_functions.aws_lambda_event_source_mapping.notifier["failure-dlq"]',
    })
    return m


MAPPING = _mapping()
ADDRESS_TO_LOGICAL = {v: k for k, v in MAPPING.items()}

# A primary-stack parameter that the replica stack's output fills; in Terraform, a reference.
CROSS_STACK_PARAMS = {"ReplicaKeyArn": ("ReplicaKey", "Arn")}
# Terraform variables with no template parameter.
TF_ONLY_VARIABLES = {
    "primary_region": "a stack's region is the one it is deployed in; one configuration names both",
    "managed_by": "the ManagedBy tag is a stack tag (given when a stack is deployed), here a value "
                  "of the providers' default_tags",
}
# Variable defaults that differ from the parameter's on purpose (printed as notes): none now.
DEFAULT_EXCEPTIONS = {}
# The settings of a root provider block this script reads: alias and region place the
# resources; default_tags are the stacks' tags (see compare_providers).
PROVIDER_SETTINGS = {"alias", "region", "default_tags"}

# ------------------------------------------------------------------------------------------
# Resource kinds, attributes and names.

CFN_KIND = {
    "AWS::S3::Bucket": "bucket",
    "AWS::S3::BucketPolicy": "bucket_policy",
    "AWS::KMS::Key": "key",
    "AWS::KMS::Alias": "alias",
    "AWS::IAM::Role": "role",
    "AWS::IAM::RolePolicy": "role_policy",
    "AWS::IAM::Policy": "role_policy",
    "AWS::SQS::Queue": "queue",
    "AWS::SQS::QueuePolicy": "queue_policy",
    "AWS::SNS::Topic": "topic",
    "AWS::SNS::Subscription": "subscription",
    "AWS::Events::Rule": "rule",
    "AWS::CloudWatch::Alarm": "alarm",
    "AWS::Logs::LogGroup": "log_group",
    "AWS::Lambda::Function": "function",
    "AWS::Lambda::EventSourceMapping": "esm",
}
TF_KIND = {
    "aws_s3_bucket": "bucket",
    "aws_s3_bucket_policy": "bucket_policy",
    "aws_kms_key": "key",
    "aws_kms_alias": "alias",
    "aws_iam_role": "role",
    "aws_iam_role_policy": "role_policy",
    "aws_sqs_queue": "queue",
    "aws_sqs_queue_policy": "queue_policy",
    "aws_sns_topic": "topic",
    "aws_sns_topic_subscription": "subscription",
    "aws_cloudwatch_event_rule": "rule",
    "aws_cloudwatch_metric_alarm": "alarm",
    "aws_cloudwatch_log_group": "log_group",
    "aws_lambda_function": "function",
    "aws_lambda_event_source_mapping": "esm",
}
KIND_CFN_TYPE = {v: k for k, v in CFN_KIND.items()}
# Both an AWS::IAM::RolePolicy and an AWS::IAM::Policy naming Roles only are inline policies
# embedded in roles (aws_iam_role_policy): both are compared in the second's shape.
KIND_CFN_TYPE["role_policy"] = "AWS::IAM::Policy"

# Ref / GetAtt attribute -> canonical attribute.
CFN_ATTR = {
    "bucket": {"Ref": "name", "Arn": "arn"},
    "queue": {"Ref": "url", "Arn": "arn", "QueueName": "name", "QueueUrl": "url"},
    "key": {"Ref": "key_id", "Arn": "arn", "KeyId": "key_id"},
    "alias": {"Ref": "name"},
    "role": {"Ref": "name", "Arn": "arn", "RoleId": "unique_id"},
    "topic": {"Ref": "arn", "TopicArn": "arn", "TopicName": "name"},
    "function": {"Ref": "name", "Arn": "arn"},
    "log_group": {"Ref": "name", "Arn": "arn:*"},
    "rule": {"Ref": "name", "Arn": "arn"},
    "alarm": {"Ref": "name", "Arn": "arn"},
    "esm": {"Ref": "id", "Id": "id"},
    "subscription": {"Ref": "arn"},
}
# Terraform attribute -> canonical attribute.
TF_ATTR = {
    "bucket": {"id": "name", "bucket": "name", "arn": "arn"},
    "queue": {"id": "url", "url": "url", "arn": "arn", "name": "name"},
    "key": {"id": "key_id", "key_id": "key_id", "arn": "arn"},
    "alias": {"id": "name", "name": "name"},
    "role": {"id": "name", "name": "name", "arn": "arn", "unique_id": "unique_id"},
    "topic": {"id": "arn", "arn": "arn", "name": "name"},
    "function": {"id": "name", "function_name": "name", "arn": "arn"},
    "log_group": {"id": "name", "name": "name", "arn": "arn"},
    "rule": {"id": "name", "name": "name", "arn": "arn"},
    "alarm": {"id": "name", "alarm_name": "name", "arn": "arn"},
    "esm": {"id": "id", "uuid": "id"},
    "subscription": {"id": "arn", "arn": "arn"},
}
CFN_NAME_PROP = {
    "bucket": "BucketName", "queue": "QueueName", "role": "RoleName", "topic": "TopicName",
    "function": "FunctionName", "log_group": "LogGroupName", "rule": "Name", "alarm": "AlarmName",
    "alias": "AliasName",
}
TF_NAME_ATTR = {
    "bucket": "bucket", "queue": "name", "role": "name", "topic": "name",
    "function": "function_name", "log_group": "name", "rule": "name", "alarm": "alarm_name",
    "alias": "name",
}
ACCOUNT = "{account}"


def var_tok(name):
    return "{var:%s}" % name


def ref_tok(logical, attr):
    return "{ref:%s.%s}" % (kebab(logical), attr)


def kebab(logical):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", logical).lower()


def snake(name):
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def derive(kind, attr, name, region):
    """The string an attribute of a resource named `name` stands for, where it follows."""
    if not isinstance(name, str) or name.startswith("<"):
        return None
    if attr == "name":
        return name
    if attr not in ("arn", "arn:*"):
        return None
    arns = {
        "bucket": "arn:aws:s3:::%s",
        "queue": "arn:aws:sqs:%s:%s:%%s" % (region, ACCOUNT),
        "role": "arn:aws:iam::%s:role/%%s" % ACCOUNT,
        "topic": "arn:aws:sns:%s:%s:%%s" % (region, ACCOUNT),
        "function": "arn:aws:lambda:%s:%s:function:%%s" % (region, ACCOUNT),
        "log_group": "arn:aws:logs:%s:%s:log-group:%%s" % (region, ACCOUNT),
        "rule": "arn:aws:events:%s:%s:rule/%%s" % (region, ACCOUNT),
        "alarm": "arn:aws:cloudwatch:%s:%s:alarm:%%s" % (region, ACCOUNT),
    }
    if kind not in arns:
        return None
    arn = arns[kind] % name
    return arn + ":*" if attr == "arn:*" else arn


# ------------------------------------------------------------------------------------------
# Shared value forms.

class Cond:
    """A condition on variables: `"{var:artifact_bucket}" != ""`."""

    def __init__(self, text):
        self.text = text

    def __str__(self):
        return self.text

    def negate(self):
        return Cond(negate(self.text))


class IfValue:
    """A value chosen by a condition (Fn::If; `c ? a : b` on a symbolic c)."""

    def __init__(self, cond, a, b):
        self.cond, self.a, self.b = cond, a, b

    def __str__(self):
        return "if(%s, %s, %s)" % (self.cond, fmt(self.a), fmt(self.b))


def negate(text):
    if "&&" not in text and "||" not in text:
        if " == " in text:
            return text.replace(" == ", " != ", 1)
        if " != " in text:
            return text.replace(" != ", " == ", 1)
    return "!(%s)" % text


def fmt(v):
    """A value inside a condition or if(): strings quoted."""
    if isinstance(v, str):
        return json.dumps(v)
    return scalar(v)


def scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return str(int(v)) if v == int(v) else repr(v)
    if isinstance(v, (datetime.date, datetime.datetime)):
        return v.isoformat()
    if v is None:
        return "null"
    if isinstance(v, (list, tuple)):
        return "[%s]" % ", ".join(scalar(x) for x in v)
    if isinstance(v, dict):
        return json.dumps({k: scalar(x) for k, x in v.items()}, sort_keys=True)
    return str(v)


# ------------------------------------------------------------------------------------------
# Normalization and flattening (shared by both sides; the input is CloudFormation-shaped).

POLICY_PROPS = ("PolicyDocument", "KeyPolicy", "AssumeRolePolicyDocument")
SET_FIELDS = ("Action", "NotAction", "Resource", "NotResource")


def _listify(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _sorted(values):
    return sorted(values, key=scalar)


def normalize_policy(doc):
    if not isinstance(doc, dict):
        return doc
    doc = dict(doc)
    stmts = doc.get("Statement")
    if isinstance(stmts, dict):
        stmts = [stmts]
    if isinstance(stmts, list):
        out = []
        for s in stmts:
            if not isinstance(s, dict):
                out.append(s)
                continue
            s = dict(s)
            for f in SET_FIELDS:
                if f in s:
                    s[f] = _sorted(_listify(s[f]))
            for f in ("Principal", "NotPrincipal"):
                if isinstance(s.get(f), dict):
                    s[f] = {k: _sorted(_listify(v)) for k, v in s[f].items()}
            if isinstance(s.get("Condition"), dict):
                s["Condition"] = {
                    op: ({k: _sorted(_listify(v)) for k, v in kv.items()} if isinstance(kv, dict) else kv)
                    for op, kv in s["Condition"].items()
                }
            out.append(s)
        doc["Statement"] = out
    return doc


def _sort_lists(v):
    if isinstance(v, dict):
        return {k: _sort_lists(x) for k, x in v.items()}
    if isinstance(v, list):
        items = [_sort_lists(x) for x in v]
        return _sorted(items) if all(not isinstance(x, (dict, list)) for x in items) else items
    return v


def normalize_props(props):
    props = dict(props)
    for p in POLICY_PROPS:
        if p in props:
            props[p] = normalize_policy(props[p])
    if "EventPattern" in props:
        props["EventPattern"] = _sort_lists(props["EventPattern"])
    return props


def flatten(v, path, out):
    if isinstance(v, dict):
        if not v:
            out[path] = "{}"
        for k in sorted(v):
            flatten(v[k], "%s.%s" % (path, k) if path else k, out)
        return
    if isinstance(v, list):
        if not v:
            out[path] = "[]"
            return
        if all(isinstance(x, dict) for x in v):
            if path.endswith("Tags") and all(set(x) == {"Key", "Value"} for x in v):
                for x in v:
                    out["%s.%s" % (path, x["Key"])] = scalar(x["Value"])
                return
            if all(set(x) == {"Name", "Value"} for x in v):
                for x in v:
                    out["%s[%s]" % (path, scalar(x["Name"]))] = scalar(x["Value"])
                return
            label = None
            for field in ("Sid", "Id", "id"):
                ids = [x.get(field) for x in v]
                if all(isinstance(i, str) for i in ids) and len(set(ids)) == len(ids):
                    label = field
                    break
            for i, x in enumerate(v):
                item = x[label] if label else i
                if label:  # the label names the item: not a setting of its own
                    x = {k: y for k, y in x.items() if k != label} or {label: item}
                flatten(x, "%s[%s]" % (path, item), out)
            return
        out[path] = scalar(v)
        return
    out[path] = scalar(v)


# ------------------------------------------------------------------------------------------
# CloudFormation.

class Cfn:
    def __init__(self, world, stack, path):
        self.world, self.stack, self.path = world, stack, path
        with open(path) as f:
            self.doc = yaml.safe_load(f) or {}
        self.region = var_tok("%s_region" % stack)
        self.params = self.doc.get("Parameters") or {}
        self.conditions = self.doc.get("Conditions") or {}
        self.resources = self.doc.get("Resources") or {}
        self.outputs = self.doc.get("Outputs") or {}
        self._names = {}
        self._naming = set()

    PSEUDO = {"AWS::AccountId": ACCOUNT, "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com",
              "AWS::NoValue": None}

    def pseudo(self, name):
        if name == "AWS::Region":
            return self.region
        if name in self.PSEUDO:
            return self.PSEUDO[name]
        return "{%s}" % name

    def ref(self, name):
        if name.startswith("AWS::"):
            return self.pseudo(name)
        if name in self.params:
            if name in CROSS_STACK_PARAMS:
                logical, attr = CROSS_STACK_PARAMS[name]
                tpl = self.world.template_of(logical)
                if tpl is None:
                    return "<no resource %s for parameter %s>" % (logical, name)
                return tpl.attr(logical, attr)
            return var_tok(snake(name))
        if name in self.resources:
            return self.attr(name, "Ref")
        return "<unknown Ref %s>" % name

    def attr(self, logical, attr):
        res = self.resources.get(logical)
        if res is None:
            return "<unknown resource %s>" % logical
        kind = CFN_KIND.get(res.get("Type"))
        canon = CFN_ATTR.get(kind, {}).get(attr, attr[0].lower() + attr[1:] if attr else attr)
        d = derive(kind, canon, self.name_of(logical), self.region)
        return d if d is not None else ref_tok(logical, canon)

    def name_of(self, logical):
        if logical in self._names:
            return self._names[logical]
        res = self.resources[logical]
        prop = CFN_NAME_PROP.get(CFN_KIND.get(res.get("Type")))
        if prop is None or logical in self._naming:
            return None
        self._naming.add(logical)
        try:
            v = (res.get("Properties") or {}).get(prop)
            name = self.resolve(v) if v is not None else None
        finally:
            self._naming.discard(logical)
        self._names[logical] = name if isinstance(name, str) else None
        return self._names[logical]

    def sub(self, arg):
        if isinstance(arg, list):
            text, local = arg[0], {k: self.resolve(v) for k, v in (arg[1] or {}).items()}
        else:
            text, local = arg, {}

        def one(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in local:
                return scalar(local[inner])
            if "." in inner and not inner.startswith("AWS::"):
                logical, attr = inner.split(".", 1)
                return scalar(self.attr(logical, attr))
            return scalar(self.ref(inner))

        return re.sub(r"\$\{([^}]*)\}", one, text)

    def condition(self, name):
        spec = self.conditions.get(name)
        if spec is None:
            return "<unknown condition %s>" % name
        return self.cond_expr(spec)

    def cond_expr(self, v):
        if isinstance(v, dict) and len(v) == 1:
            (k, a), = v.items()
            if k == "Fn::Equals":
                return "%s == %s" % (fmt(self.resolve(a[0])), fmt(self.resolve(a[1])))
            if k == "Fn::Not":
                return negate(self.cond_expr(a[0]))
            if k == "Fn::And":
                return " && ".join("(%s)" % self.cond_expr(x) for x in a)
            if k == "Fn::Or":
                return " || ".join("(%s)" % self.cond_expr(x) for x in a)
            if k == "Condition":
                return self.condition(a)
        return "<condition %r>" % (v,)

    def resolve(self, v):
        if isinstance(v, dict):
            if len(v) == 1:
                (k, a), = v.items()
                if k == "Ref":
                    return self.ref(a)
                if k == "Fn::GetAtt":
                    logical, attr = (a.split(".", 1) if isinstance(a, str) else a)
                    return self.attr(logical, attr)
                if k == "Fn::Sub":
                    return self.sub(a)
                if k == "Fn::If":
                    return str(IfValue(self.condition(a[0]), self.resolve(a[1]), self.resolve(a[2])))
                if k == "Fn::Join":
                    return a[0].join(scalar(self.resolve(x)) for x in a[1])
                if k in ("Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or"):
                    return self.cond_expr(v)
                if k.startswith("Fn::"):
                    return "<unsupported %s>" % k
            return {k: self.resolve(x) for k, x in v.items()}
        if isinstance(v, list):
            return [self.resolve(x) for x in v]
        return v

    def model(self, logical):
        res = self.resources[logical]
        props = normalize_props(self.resolve(res.get("Properties") or {}))
        rtype = res.get("Type")
        if rtype == "AWS::IAM::RolePolicy":
            rtype = "AWS::IAM::Policy"
            props["Roles"] = [props.pop("RoleName", None)]
        out = {}
        flatten(props, "Properties", out)
        if "Metadata" in res:
            flatten(self.resolve(res["Metadata"]), "Metadata", out)
        out["Type"] = rtype
        out["Region"] = self.region
        if "Condition" in res:
            out["Condition"] = self.condition(res["Condition"])
        if "DependsOn" in res:
            out["DependsOn"] = scalar(sorted(_listify(res["DependsOn"])))
        for p in ("DeletionPolicy", "UpdateReplacePolicy"):
            if p in res:
                out[p] = res[p]
        known = {"Type", "Properties", "Metadata", "Condition", "DependsOn", "DeletionPolicy",
                 "UpdateReplacePolicy"}
        for k in res:
            if k not in known:
                out[k] = scalar(res[k])
        return out


class CfnWorld:
    def __init__(self, cfn_dir):
        self.templates = []
        for stack, fname in TEMPLATES:
            self.templates.append(Cfn(self, stack, os.path.join(cfn_dir, fname)))

    def template_of(self, logical):
        for t in self.templates:
            if logical in t.resources:
                return t
        return None


# ------------------------------------------------------------------------------------------
# Terraform: expression parsing.

class EvalError(Exception):
    pass


def _skip_string(s, i, q):
    """s[i] is the opening quote q; return the index after the closing one."""
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if s.startswith("${", i) or s.startswith("%{", i):
            i = _skip_interp(s, i + 2)
            continue
        if c == q:
            return i + 1
        i += 1
    raise EvalError("unterminated string in %r" % s)


def _skip_interp(s, i):
    """i is just after `${`; return the index after the matching `}`."""
    depth = 1
    while i < len(s):
        c = s[i]
        if c in "\"'":
            i = _skip_string(s, i, c)
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise EvalError("unterminated interpolation in %r" % s)


def template_parts(s):
    """Split a template string into literal strings and ('expr', text) parts."""
    parts, lit, i = [], [], 0
    while i < len(s):
        if s.startswith("$${", i):
            lit.append("${")
            i += 3
            continue
        if s.startswith("%%{", i):
            lit.append("%{")
            i += 3
            continue
        if s.startswith("%{", i):
            raise EvalError("template directives are not supported: %r" % s)
        if s.startswith("${", i):
            j = _skip_interp(s, i + 2)
            if lit:
                parts.append("".join(lit))
                lit = []
            inner = s[i + 2:j - 1].strip()
            if inner.startswith("~"):
                inner = inner[1:]
            if inner.endswith("~"):
                inner = inner[:-1]
            parts.append(("expr", inner))
            i = j
            continue
        lit.append(s[i])
        i += 1
    if lit:
        parts.append("".join(lit))
    return parts


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'"}


def decode_string(body):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n in _ESCAPES:
                out.append(_ESCAPES[n])
                i += 2
                continue
            if n == "u":
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
                continue
            if n == "x":
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
                continue
        if body.startswith("${", i):
            j = _skip_interp(body, i + 2)
            out.append(body[i:j])
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


_PUNCT = ("=>", "==", "!=", ">=", "<=", "&&", "||", "...", "(", ")", "[", "]", "{", "}", ",", ".",
          ":", "?", "=", "!", "*", ">", "<", "+", "-", "/", "%")


def tokenize(text):
    toks, i = [], 0
    while i < len(text):
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c in "\"'":
            j = _skip_string(text, i, c)
            toks.append(("str", decode_string(text[i + 1:j - 1])))
            i = j
            continue
        m = re.match(r"\d+(\.\d+)?([eE][+-]?\d+)?", text[i:])
        if m:
            num = m.group(0)
            toks.append(("num", float(num) if ("." in num or "e" in num.lower()) else int(num)))
            i += len(num)
            continue
        m = re.match(r"[A-Za-z_][A-Za-z0-9_-]*", text[i:])
        if m:
            toks.append(("id", m.group(0)))
            i += len(m.group(0))
            continue
        for p in _PUNCT:
            if text.startswith(p, i):
                toks.append(("p", p))
                i += len(p)
                break
        else:
            raise EvalError("cannot read %r in %r" % (c, text))
    toks.append(("end", None))
    return toks


class Parser:
    def __init__(self, text):
        self.text = text
        self.toks = tokenize(text)
        self.i = 0

    def peek(self, k=0):
        return self.toks[self.i + k]

    def take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind, value=None, k=0):
        t = self.peek(k)
        return t[0] == kind and (value is None or t[1] == value)

    def expect(self, kind, value=None):
        t = self.take()
        if t[0] != kind or (value is not None and t[1] != value):
            raise EvalError("expected %s in %r, found %r" % (value or kind, self.text, t[1]))
        return t

    def parse(self):
        node = self.expr()
        if not self.at("end"):
            raise EvalError("unexpected %r in %r" % (self.peek()[1], self.text))
        return node

    def expr(self):
        c = self.or_()
        if self.at("p", "?"):
            self.take()
            a = self.expr()
            self.expect("p", ":")
            b = self.expr()
            return ("cond", c, a, b)
        return c

    def or_(self):
        n = self.and_()
        while self.at("p", "||"):
            self.take()
            n = ("bool", "||", n, self.and_())
        return n

    def and_(self):
        n = self.cmp()
        while self.at("p", "&&"):
            self.take()
            n = ("bool", "&&", n, self.cmp())
        return n

    def cmp(self):
        n = self.unary()
        if self.at("p", "==") or self.at("p", "!="):
            op = self.take()[1]
            return ("cmp", op, n, self.unary())
        return n

    def unary(self):
        if self.at("p", "!"):
            self.take()
            return ("not", self.unary())
        if self.at("p", "-") and self.at("num", k=1):
            self.take()
            return ("lit", -self.take()[1])
        return self.postfix()

    def postfix(self):
        n = self.primary()
        while True:
            if self.at("p", "."):
                self.take()
                t = self.take()
                if t == ("p", "*"):
                    n = ("splat", n)
                elif t[0] in ("id", "num"):
                    n = ("attr", n, t[1]) if t[0] == "id" else ("index", n, ("lit", t[1]))
                else:
                    raise EvalError("bad attribute access in %r" % self.text)
            elif self.at("p", "["):
                if self.at("p", "*", 1) and self.at("p", "]", 2):
                    self.i += 3
                    n = ("splat", n)
                else:
                    self.take()
                    idx = self.expr()
                    self.expect("p", "]")
                    n = ("index", n, idx)
            else:
                return n

    def primary(self):
        t = self.take()
        if t[0] == "num":
            return ("lit", t[1])
        if t[0] == "str":
            return ("tmpl", t[1])
        if t[0] == "id":
            if t[1] in ("true", "True"):
                return ("lit", True)
            if t[1] in ("false", "False"):
                return ("lit", False)
            if t[1] in ("null", "None"):
                return ("lit", None)
            if self.at("p", "("):
                self.take()
                args = []
                while not self.at("p", ")"):
                    args.append(self.expr())
                    if self.at("p", "..."):
                        self.take()
                    if self.at("p", ","):
                        self.take()
                self.expect("p", ")")
                return ("call", t[1], args)
            return ("ref", t[1])
        if t == ("p", "("):
            n = self.expr()
            self.expect("p", ")")
            return n
        if t == ("p", "["):
            if self.at("id", "for"):
                return self.for_expr("]")
            items = []
            while not self.at("p", "]"):
                items.append(self.expr())
                if self.at("p", ","):
                    self.take()
            self.expect("p", "]")
            return ("list", items)
        if t == ("p", "{"):
            if self.at("id", "for"):
                return self.for_expr("}")
            items = []
            while not self.at("p", "}"):
                if self.at("id") and (self.at("p", "=", 1) or self.at("p", ":", 1)):
                    key = ("lit", self.take()[1])
                else:
                    key = self.expr()
                t2 = self.take()
                if t2 not in (("p", "="), ("p", ":")):
                    raise EvalError("expected = or : in object %r" % self.text)
                items.append((key, self.expr()))
                if self.at("p", ","):
                    self.take()
            self.expect("p", "}")
            return ("map", items)
        raise EvalError("unexpected %r in %r" % (t[1], self.text))

    def for_expr(self, close):
        self.expect("id", "for")
        names = [self.expect("id")[1]]
        if self.at("p", ","):
            self.take()
            names.append(self.expect("id")[1])
        self.expect("id", "in")
        coll = self.expr()
        self.expect("p", ":")
        if close == "}":
            kexpr = self.expr()
            self.expect("p", "=>")
            vexpr = self.expr()
            if self.at("p", "..."):
                raise EvalError("grouping for-expressions are not supported")
        else:
            kexpr, vexpr = None, self.expr()
        cond = None
        if self.at("id", "if"):
            self.take()
            cond = self.expr()
        self.expect("p", close)
        return ("for", close, names, coll, kexpr, vexpr, cond)


_PARSED = {}


def parse_expr(text):
    if text not in _PARSED:
        _PARSED[text] = Parser(text).parse()
    return _PARSED[text]


# ------------------------------------------------------------------------------------------
# Terraform: configuration and symbolic evaluation.

MISSING = object()
# Stack of sets collecting the depends_on of the module outputs an evaluation goes through
# (None: not collecting).
COLLECT = [None]


def attr_of(block, key, default=MISSING):
    """An attribute of a parsed block (hcl2 wraps each attribute's value in a list)."""
    if key not in block:
        return default
    v = block[key]
    if isinstance(v, list) and len(v) == 1:
        return v[0]
    return v


def strip_interp(s):
    if isinstance(s, str) and s.startswith("${") and s.endswith("}"):
        return s[2:-1].strip()
    return s


class TfModule:
    def __init__(self, world, directory, prefix="", parent=None, call=None, name=None):
        self.world, self.dir, self.prefix = world, directory, prefix
        self.parent, self.call, self.name = parent, call, name
        self.variables, self.locals, self.resources = {}, {}, {}
        self.data, self.outputs, self.calls = {}, {}, {}
        self.sources = {}  # (type, name) -> (file, first line, last line)
        self.provider_blocks = []
        self.files = sorted(glob.glob(os.path.join(directory, "*.tf")))
        if not self.files:
            raise EvalError("no .tf files in %s" % directory)
        for f in self.files:
            try:
                with open(f) as fh:
                    doc = hcl2.load(fh)
            except Exception as e:  # the parser's own errors have no common base class
                raise EvalError("%s: %s" % (f, e))
            for item in doc.get("variable", []):
                self.variables.update(item)
            for item in doc.get("locals", []):
                for k, v in item.items():
                    if not k.startswith("__"):
                        self.locals[k] = v[0] if isinstance(v, list) and len(v) == 1 else v
            for section, target in (("resource", self.resources), ("data", self.data)):
                for item in doc.get(section, []):
                    for rtype, named in item.items():
                        for rname, block in named.items():
                            target[(rtype, rname)] = block
                            if section == "resource":
                                self.sources[(rtype, rname)] = (
                                    f, block.get("__start_line__"), block.get("__end_line__"))
            for item in doc.get("output", []):
                self.outputs.update(item)
            for item in doc.get("module", []):
                self.calls.update(item)
            for item in doc.get("provider", []):
                for pname, block in item.items():
                    self.provider_blocks.append((pname, block, f))
        self.providers = {}
        self.children = {}

    def setup(self):
        scope = Scope(self)
        if self.parent is None:
            for pname, block, _ in self.provider_blocks:
                alias = attr_of(block, "alias", None)
                key = "%s.%s" % (pname, alias) if alias else pname
                self.providers[key] = ev(attr_of(block, "region", "<no region>"), scope)
        else:
            given = attr_of(self.call, "providers", None)
            if isinstance(given, dict):
                for k, v in given.items():
                    self.providers[k] = self.parent.providers.get(strip_interp(v), "<unknown provider %s>" % v)
            elif "aws" in self.parent.providers:
                self.providers["aws"] = self.parent.providers["aws"]
        for cname, call in self.calls.items():
            source = attr_of(call, "source")
            if not isinstance(source, str) or not source.startswith("."):
                raise EvalError("module %s: only local module sources are supported (%r)" % (cname, source))
            child = TfModule(self.world, os.path.normpath(os.path.join(self.dir, source)),
                             "%smodule.%s." % (self.prefix, cname), self, call, cname)
            self.children[cname] = child
            child.setup()

    def all_modules(self):
        yield self
        for c in self.children.values():
            yield from c.all_modules()


class Scope:
    def __init__(self, module, each=None, count_index=None, binds=None):
        self.module, self.each, self.count_index = module, each, count_index
        self.binds = binds or {}

    def bind(self, names):
        b = dict(self.binds)
        b.update(names)
        return Scope(self.module, self.each, self.count_index, b)


class Namespace:
    def __init__(self, getter, label):
        self.getter, self.label = getter, label

    def get(self, name):
        return self.getter(name)

    def __str__(self):
        return "<%s>" % self.label


class ResourceCollection:
    def __init__(self, module, rtype, rname):
        self.module, self.rtype, self.rname = module, rtype, rname

    def instances(self):
        return instances_of(self.module, self.rtype, self.rname)[1]

    def as_map(self):
        return {inst.key: inst for inst in self.instances()}

    def __str__(self):
        return "<%s%s.%s>" % (self.module.prefix, self.rtype, self.rname)


class ResourceInstance:
    def __init__(self, module, rtype, rname, key, each_value, mode):
        self.module, self.rtype, self.rname = module, rtype, rname
        self.key, self.each_value, self.mode = key, each_value, mode
        self.block = module.resources[(rtype, rname)]
        if mode == "for_each":
            suffix = '["%s"]' % key
        elif mode == "count":
            suffix = "[%d]" % key
        else:
            suffix = ""
        self.address = "%s%s.%s%s" % (module.prefix, rtype, rname, suffix)
        self.kind = TF_KIND.get(rtype)

    @property
    def logical(self):
        return ADDRESS_TO_LOGICAL.get(self.address, self.address)

    def scope(self):
        if self.mode == "for_each":
            return Scope(self.module, each=(self.key, self.each_value))
        if self.mode == "count":
            return Scope(self.module, count_index=self.key)
        return Scope(self.module)

    def region(self):
        p = attr_of(self.block, "provider", "${aws}")
        p = strip_interp(p)
        return self.module.providers.get(p, "<unknown provider %s>" % p)

    def name(self):
        world = self.module.world
        if self.address in world.names:
            return world.names[self.address]
        attr = TF_NAME_ATTR.get(self.kind)
        if attr is None or self.address in world.naming:
            return None
        world.naming.add(self.address)
        COLLECT.append(None)
        try:
            raw = attr_of(self.block, attr)
            name = ev(raw, self.scope()) if raw is not MISSING else None
        finally:
            COLLECT.pop()
            world.naming.discard(self.address)
        world.names[self.address] = name if isinstance(name, str) else None
        return world.names[self.address]

    def get(self, attr):
        canon = TF_ATTR.get(self.kind, {}).get(attr, attr)
        d = derive(self.kind, canon, self.name(), self.region())
        if d is not None:
            return d
        if self.logical == self.address:
            return "{ref:%s.%s}" % (self.address, canon)
        return ref_tok(self.logical, canon)

    def __str__(self):
        return self.logical


def instances_of(module, rtype, rname):
    """(condition or None, [ResourceInstance]) of a resource block."""
    world = module.world
    key = (module.prefix, rtype, rname)
    if key in world.instances:
        return world.instances[key]
    block = module.resources[(rtype, rname)]
    scope = Scope(module)
    cond = None
    world.instances[key] = (None, [])  # a self-reference while expanding sees no instances
    if "for_each" in block:
        fe = ev(attr_of(block, "for_each"), scope)
        if isinstance(fe, IfValue):
            if fe.b not in ({}, []):
                raise EvalError("%s%s.%s: for_each's false branch must be empty" % (module.prefix, rtype, rname))
            cond, fe = fe.cond, fe.a
        if isinstance(fe, ResourceCollection):
            fe = fe.as_map()
        if isinstance(fe, dict):
            items = list(fe.items())
        elif isinstance(fe, list):
            items = [(x, x) for x in fe]
        else:
            raise EvalError("%s%s.%s: cannot expand for_each %r" % (module.prefix, rtype, rname, fe))
        insts = [ResourceInstance(module, rtype, rname, k, v, "for_each") for k, v in items]
    elif "count" in block:
        n = ev(attr_of(block, "count"), scope)
        if isinstance(n, IfValue):
            if n.b != 0:
                raise EvalError("%s%s.%s: count's false branch must be 0" % (module.prefix, rtype, rname))
            cond, n = n.cond, n.a
        if not isinstance(n, int):
            raise EvalError("%s%s.%s: cannot expand count %r" % (module.prefix, rtype, rname, n))
        insts = [ResourceInstance(module, rtype, rname, i, None, "count") for i in range(n)]
    else:
        insts = [ResourceInstance(module, rtype, rname, None, None, "single")]
    world.instances[key] = (cond, insts)
    return world.instances[key]


SKIP_COMMENT = re.compile(r"(?:#|//)\s*checkov:skip=([A-Za-z0-9_]+)(?::([^\n]*))?")
_LINES = {}


def checkov_skips(inst):
    """The `#checkov:skip=<id>:<comment>` comments inside a resource block (checkov's
    Terraform form of CloudFormation's Metadata.checkov.skip)."""
    f, first, last = inst.module.sources.get((inst.rtype, inst.rname), (None, None, None))
    if f is None or first is None or last is None:
        return []
    if f not in _LINES:
        with open(f) as fh:
            _LINES[f] = fh.read().split("\n")
    out = []
    for line in _LINES[f][first - 1:last]:
        m = SKIP_COMMENT.search(line)
        if m:
            item = {"id": m.group(1)}
            if m.group(2) is not None:
                item["comment"] = m.group(2).strip()
            out.append(item)
    return out


def resource_ref(module, rtype, rname):
    if (rtype, rname) not in module.resources:
        raise EvalError("no resource %s%s.%s" % (module.prefix, rtype, rname))
    block = module.resources[(rtype, rname)]
    if "for_each" in block or "count" in block:
        return ResourceCollection(module, rtype, rname)
    return instances_of(module, rtype, rname)[1][0]


def var_value(module, name):
    if module.parent is None:
        if name not in module.variables:
            raise EvalError("undeclared variable var.%s" % name)
        return var_tok(name)
    if name not in module.variables:
        raise EvalError("%s: undeclared variable var.%s" % (module.prefix, name))
    if name in module.call:
        return ev(attr_of(module.call, name), Scope(module.parent))
    default = attr_of(module.variables[name], "default")
    if default is MISSING:
        raise EvalError("%s: variable %s is not set" % (module.prefix, name))
    return ev(default, Scope(module))


def module_output(module, cname, out):
    child = module.children.get(cname)
    if child is None:
        raise EvalError("%s: no module %s" % (module.prefix, cname))
    block = child.outputs.get(out)
    if block is None:
        raise EvalError("module.%s has no output %s" % (cname, out))
    value = ev(attr_of(block, "value"), Scope(child))
    deps = attr_of(block, "depends_on", None)
    if deps and COLLECT[-1] is not None:
        for d in ev(deps, Scope(child)):
            COLLECT[-1].update(dep_names(d))
    return value


def dep_names(d):
    if isinstance(d, ResourceCollection):
        return [i.logical for i in d.instances()]
    if isinstance(d, ResourceInstance):
        return [d.logical]
    return [scalar(d)]


def data_value(module, dtype, dname, attr):
    block = module.data.get((dtype, dname))
    if block is None:
        raise EvalError("no data source %s.%s" % (dtype, dname))
    if dtype == "aws_caller_identity" and attr == "account_id":
        return ACCOUNT
    if dtype == "aws_region" and attr in ("name", "id", "region"):
        p = strip_interp(attr_of(block, "provider", "${aws}"))
        return module.providers.get(p, "<unknown provider %s>" % p)
    if dtype == "aws_partition" and attr == "partition":
        return "aws"
    return "{data:%s.%s.%s}" % (dtype, dname, attr)


def root_ref(name, scope):
    m = scope.module
    if name in scope.binds:
        return scope.binds[name]
    if name == "var":
        return Namespace(lambda n: var_value(m, n), "var")
    if name == "local":
        def local(n):
            if n not in m.locals:
                raise EvalError("%s: no local.%s" % (m.prefix, n))
            return ev(m.locals[n], Scope(m))
        return Namespace(local, "local")
    if name == "each":
        if scope.each is None:
            raise EvalError("each outside for_each")
        return {"key": scope.each[0], "value": scope.each[1]}
    if name == "count":
        if scope.count_index is None:
            raise EvalError("count outside count")
        return {"index": scope.count_index}
    if name == "module":
        return Namespace(lambda c: Namespace(lambda o: module_output(m, c, o), "module." + c), "module")
    if name == "data":
        return Namespace(lambda t: Namespace(lambda n: Namespace(
            lambda a: data_value(m, t, n, a), "data.%s.%s" % (t, n)), "data." + t), "data")
    if name == "path":
        return {"module": m.dir, "root": m.world.root.dir, "cwd": os.getcwd()}
    if name == "terraform":
        return {"workspace": "{terraform.workspace}"}
    if "_" in name:  # a resource type
        return Namespace(lambda n: resource_ref(m, name, n), name)
    raise EvalError("unknown reference %s" % name)


def get_attr(obj, name):
    if isinstance(obj, Namespace):
        return obj.get(name)
    if isinstance(obj, ResourceInstance):
        return obj.get(name)
    if isinstance(obj, dict):
        if name not in obj:
            raise EvalError("no attribute %s in %s" % (name, scalar(obj)))
        return obj[name]
    if isinstance(obj, list):  # after a splat
        return [get_attr(x, name) for x in obj]
    raise EvalError("cannot take .%s of %s" % (name, scalar(obj)))


def get_index(obj, idx):
    if isinstance(obj, ResourceCollection):
        for inst in obj.instances():
            if inst.key == idx:
                return inst
        raise EvalError("%s: no instance [%r]" % (obj, idx))
    if isinstance(obj, dict):
        if idx not in obj:
            raise EvalError("no key %r in %s" % (idx, scalar(obj)))
        return obj[idx]
    if isinstance(obj, list):
        if not isinstance(idx, int) or idx >= len(obj):
            raise EvalError("bad index %r" % (idx,))
        return obj[idx]
    raise EvalError("cannot index %s" % scalar(obj))


def is_symbolic(v):
    return isinstance(v, (Cond, IfValue)) or (isinstance(v, str) and "{" in v and "}" in v)


def compare(op, a, b):
    if is_symbolic(a) or is_symbolic(b):
        return Cond("%s %s %s" % (fmt(a), op, fmt(b)))
    return (a == b) if op == "==" else (a != b)


def _flat(x):
    for y in x:
        if isinstance(y, list):
            yield from _flat(y)
        else:
            yield y


def call(fname, args):
    if fname == "jsonencode":
        return args[0]
    if fname == "merge":
        out = {}
        for a in args:
            if not isinstance(a, dict):
                raise EvalError("merge() of %s" % scalar(a))
            out.update(a)
        return out
    if fname == "toset":
        out = []
        for x in args[0]:
            if x not in out:
                out.append(x)
        return out
    if fname in ("tolist", "tomap", "tostring", "tonumber", "tobool"):
        return args[0]
    if fname == "concat":
        return [x for a in args for x in a]
    if fname == "flatten":
        return list(_flat(args[0]))
    if fname == "join":
        return args[0].join(scalar(x) for x in args[1])
    if fname == "keys":
        return sorted(args[0])
    if fname == "values":
        return [args[0][k] for k in sorted(args[0])]
    if fname == "length":
        return len(args[0])
    if fname == "lookup":
        return args[0].get(args[1], args[2]) if len(args) > 2 else args[0][args[1]]
    if fname == "lower":
        return args[0].lower()
    if fname == "upper":
        return args[0].upper()
    raise EvalError("function %s() is not supported" % fname)


def ev_node(n, scope):
    t = n[0]
    if t == "lit":
        return n[1]
    if t == "tmpl":
        return ev_str(n[1], scope)
    if t == "ref":
        return root_ref(n[1], scope)
    if t == "attr":
        return get_attr(ev_node(n[1], scope), n[2])
    if t == "index":
        return get_index(ev_node(n[1], scope), ev_node(n[2], scope))
    if t == "splat":
        v = ev_node(n[1], scope)
        if isinstance(v, ResourceCollection):
            return v.instances()
        return v if isinstance(v, list) else [v]
    if t == "call":
        return call(n[1], [ev_node(a, scope) for a in n[2]])
    if t == "list":
        return [ev_node(x, scope) for x in n[1]]
    if t == "map":
        return {scalar(ev_node(k, scope)): ev_node(v, scope) for k, v in n[1]}
    if t == "cmp":
        return compare(n[1], ev_node(n[2], scope), ev_node(n[3], scope))
    if t == "not":
        v = ev_node(n[1], scope)
        return v.negate() if isinstance(v, Cond) else (not v)
    if t == "bool":
        a, b = ev_node(n[2], scope), ev_node(n[3], scope)
        if isinstance(a, Cond) or isinstance(b, Cond):
            return Cond("(%s) %s (%s)" % (a, n[1], b))
        return (a and b) if n[1] == "&&" else (a or b)
    if t == "cond":
        c = ev_node(n[1], scope)
        if isinstance(c, Cond):
            return IfValue(str(c), ev_node(n[2], scope), ev_node(n[3], scope))
        if is_symbolic(c):
            raise EvalError("condition on %s" % scalar(c))
        return ev_node(n[2] if c else n[3], scope)
    if t == "for":
        _, close, names, coll_n, kexpr, vexpr, cond_n = n
        coll = ev_node(coll_n, scope)
        if isinstance(coll, ResourceCollection):
            coll = coll.as_map()
        if isinstance(coll, dict):
            pairs = list(coll.items())
        elif isinstance(coll, list):
            pairs = list(enumerate(coll))
        else:
            raise EvalError("for over %s" % scalar(coll))
        out_list, out_map = [], {}
        for k, v in pairs:
            binds = {names[0]: v} if len(names) == 1 else {names[0]: k, names[1]: v}
            s = scope.bind(binds)
            if cond_n is not None and not ev_node(cond_n, s):
                continue
            if close == "]":
                out_list.append(ev_node(vexpr, s))
            else:
                out_map[scalar(ev_node(kexpr, s))] = ev_node(vexpr, s)
        return out_list if close == "]" else out_map
    raise EvalError("cannot evaluate %r" % (n,))


def ev_str(s, scope):
    parts = template_parts(s)
    if len(parts) == 1 and isinstance(parts[0], tuple):
        return ev_node(parse_expr(parts[0][1]), scope)
    out = []
    for p in parts:
        if isinstance(p, tuple):
            v = ev_node(parse_expr(p[1]), scope)
            if isinstance(v, (dict, list)):
                raise EvalError("interpolating %s into a string" % scalar(v))
            out.append(scalar(v))
        else:
            out.append(p)
    return "".join(out)


def ev(v, scope):
    if isinstance(v, str):
        return ev_str(v, scope)
    if isinstance(v, list):
        return [ev(x, scope) for x in v]
    if isinstance(v, dict):
        return {k: ev(x, scope) for k, x in v.items() if not k.startswith("__")}
    return v


class TfWorld:
    def __init__(self, tf_dir):
        self.names, self.naming, self.instances = {}, set(), {}
        self.root = TfModule(self, tf_dir)
        self.root.setup()

    def all_instances(self):
        for m in self.root.all_modules():
            for (rtype, rname) in m.resources:
                cond, insts = instances_of(m, rtype, rname)
                for inst in insts:
                    yield cond, inst


# ------------------------------------------------------------------------------------------
# Terraform -> CloudFormation-shaped properties.

TF_META = {"for_each", "count", "provider", "depends_on", "lifecycle"}


class Blk:
    """A block of one resource instance, recording which attributes a translator used."""

    def __init__(self, raw, scope, path=""):
        self.raw, self.scope, self.path = raw, scope, path
        self.used, self.children = set(), []

    def a(self, key):
        self.used.add(key)
        if key not in self.raw:
            return MISSING
        try:
            return ev(attr_of(self.raw, key), self.scope)
        except EvalError as e:
            return "<error: %s>" % e

    def blocks(self, key):
        self.used.add(key)
        out = []
        for i, b in enumerate(self.raw.get(key, [])):
            if isinstance(b, dict):
                child = Blk(b, self.scope, "%s%s[%d]." % (self.path, key, i))
                self.children.append(child)
                out.append(child)
        return out

    def leftovers(self, meta=()):
        out = {}
        for k, v in self.raw.items():
            if k.startswith("__") or k in meta:
                continue
            if k not in self.used:
                try:
                    out[self.path + k] = scalar(ev(v[0] if isinstance(v, list) and len(v) == 1 else v, self.scope))
                except EvalError as e:
                    out[self.path + k] = "<error: %s>" % e
        for c in self.children:
            out.update(c.leftovers())
        return out


def put(d, path, value):
    if value is MISSING:
        return
    keys = path.split(".")
    for k in keys[:-1]:
        d = d.setdefault(k, {})
    d[keys[-1]] = value


def tr_bucket(b, P):
    put(P, "BucketName", b.a("bucket"))
    put(P, "Tags", b.a("tags"))


def tr_versioning(b, P):
    for vc in b.blocks("versioning_configuration"):
        put(P, "VersioningConfiguration.Status", vc.a("status"))


def tr_sse(b, P):
    rules = []
    for r in b.blocks("rule"):
        item = {}
        for d in r.blocks("apply_server_side_encryption_by_default"):
            put(item, "ServerSideEncryptionByDefault.SSEAlgorithm", d.a("sse_algorithm"))
            put(item, "ServerSideEncryptionByDefault.KMSMasterKeyID", d.a("kms_master_key_id"))
        put(item, "BucketKeyEnabled", r.a("bucket_key_enabled"))
        rules.append(item)
    put(P, "BucketEncryption.ServerSideEncryptionConfiguration", rules)


def tr_pab(b, P):
    for tf, cfn in (("block_public_acls", "BlockPublicAcls"), ("block_public_policy", "BlockPublicPolicy"),
                    ("ignore_public_acls", "IgnorePublicAcls"),
                    ("restrict_public_buckets", "RestrictPublicBuckets")):
        put(P, "PublicAccessBlockConfiguration." + cfn, b.a(tf))


def tr_lifecycle(b, P):
    rules = []
    for r in b.blocks("rule"):
        it = {}
        put(it, "Id", r.a("id"))
        put(it, "Status", r.a("status"))
        # provider v5's filter { prefix } is the rule's Prefix in CloudFormation
        put(it, "Prefix", r.a("prefix"))
        for f in r.blocks("filter"):
            put(it, "Prefix", f.a("prefix"))
            put(it, "ObjectSizeGreaterThan", f.a("object_size_greater_than"))
            put(it, "ObjectSizeLessThan", f.a("object_size_less_than"))
        for e in r.blocks("expiration"):
            put(it, "ExpirationInDays", e.a("days"))
            put(it, "ExpirationDate", e.a("date"))
            put(it, "ExpiredObjectDeleteMarker", e.a("expired_object_delete_marker"))
        for a in r.blocks("abort_incomplete_multipart_upload"):
            put(it, "AbortIncompleteMultipartUpload.DaysAfterInitiation", a.a("days_after_initiation"))
        for n in r.blocks("noncurrent_version_expiration"):
            put(it, "NoncurrentVersionExpiration.NoncurrentDays", n.a("noncurrent_days"))
            put(it, "NoncurrentVersionExpiration.NewerNoncurrentVersions", n.a("newer_noncurrent_versions"))
        nts = []
        for t in r.blocks("noncurrent_version_transition"):
            x = {}
            put(x, "TransitionInDays", t.a("noncurrent_days"))
            put(x, "StorageClass", t.a("storage_class"))
            put(x, "NewerNoncurrentVersions", t.a("newer_noncurrent_versions"))
            nts.append(x)
        if nts:
            it["NoncurrentVersionTransitions"] = nts
        ts = []
        for t in r.blocks("transition"):
            x = {}
            put(x, "TransitionInDays", t.a("days"))
            put(x, "TransitionDate", t.a("date"))
            put(x, "StorageClass", t.a("storage_class"))
            ts.append(x)
        if ts:
            it["Transitions"] = ts
        rules.append(it)
    put(P, "LifecycleConfiguration.Rules", rules)


def tr_replication(b, P):
    put(P, "ReplicationConfiguration.Role", b.a("role"))
    rules = []
    for r in b.blocks("rule"):
        it = {}
        put(it, "Id", r.a("id"))
        put(it, "Priority", r.a("priority"))
        put(it, "Status", r.a("status"))
        put(it, "Prefix", r.a("prefix"))
        for f in r.blocks("filter"):
            put(it, "Filter.Prefix", f.a("prefix"))
        for d in r.blocks("delete_marker_replication"):
            put(it, "DeleteMarkerReplication.Status", d.a("status"))
        for d in r.blocks("destination"):
            put(it, "Destination.Bucket", d.a("bucket"))
            put(it, "Destination.StorageClass", d.a("storage_class"))
            put(it, "Destination.Account", d.a("account"))
            for e in d.blocks("encryption_configuration"):
                put(it, "Destination.EncryptionConfiguration.ReplicaKmsKeyID", e.a("replica_kms_key_id"))
            for rt in d.blocks("replication_time"):
                put(it, "Destination.ReplicationTime.Status", rt.a("status"))
                for t in rt.blocks("time"):
                    put(it, "Destination.ReplicationTime.Time.Minutes", t.a("minutes"))
            for m in d.blocks("metrics"):
                put(it, "Destination.Metrics.Status", m.a("status"))
                for t in m.blocks("event_threshold"):
                    put(it, "Destination.Metrics.EventThreshold.Minutes", t.a("minutes"))
        for s in r.blocks("source_selection_criteria"):
            for k in s.blocks("sse_kms_encrypted_objects"):
                put(it, "SourceSelectionCriteria.SseKmsEncryptedObjects.Status", k.a("status"))
            for k in s.blocks("replica_modifications"):
                put(it, "SourceSelectionCriteria.ReplicaModifications.Status", k.a("status"))
        rules.append(it)
    put(P, "ReplicationConfiguration.Rules", rules)


def tr_notification(b, P):
    put(P, "NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", b.a("eventbridge"))


def tr_bucket_policy(b, P):
    put(P, "Bucket", b.a("bucket"))
    put(P, "PolicyDocument", b.a("policy"))


def tr_key(b, P):
    put(P, "Description", b.a("description"))
    put(P, "EnableKeyRotation", b.a("enable_key_rotation"))
    put(P, "PendingWindowInDays", b.a("deletion_window_in_days"))
    put(P, "KeyPolicy", b.a("policy"))
    put(P, "KeyUsage", b.a("key_usage"))
    put(P, "KeySpec", b.a("customer_master_key_spec"))
    put(P, "MultiRegion", b.a("multi_region"))
    put(P, "Enabled", b.a("is_enabled"))
    put(P, "RotationPeriodInDays", b.a("rotation_period_in_days"))
    put(P, "Tags", b.a("tags"))


def tr_alias(b, P):
    put(P, "AliasName", b.a("name"))
    put(P, "TargetKeyId", b.a("target_key_id"))


def tr_role(b, P):
    put(P, "RoleName", b.a("name"))
    put(P, "AssumeRolePolicyDocument", b.a("assume_role_policy"))
    put(P, "Description", b.a("description"))
    put(P, "Path", b.a("path"))
    put(P, "MaxSessionDuration", b.a("max_session_duration"))
    put(P, "ManagedPolicyArns", b.a("managed_policy_arns"))
    put(P, "PermissionsBoundary", b.a("permissions_boundary"))
    put(P, "Tags", b.a("tags"))


def tr_role_policy(b, P):
    put(P, "PolicyName", b.a("name"))
    role = b.a("role")
    put(P, "Roles", [role] if role is not MISSING else MISSING)
    put(P, "PolicyDocument", b.a("policy"))


def tr_queue(b, P):
    for tf, cfn in (("name", "QueueName"), ("visibility_timeout_seconds", "VisibilityTimeout"),
                    ("message_retention_seconds", "MessageRetentionPeriod"),
                    ("max_message_size", "MaximumMessageSize"), ("delay_seconds", "DelaySeconds"),
                    ("receive_wait_time_seconds", "ReceiveMessageWaitTimeSeconds"),
                    ("kms_master_key_id", "KmsMasterKeyId"),
                    ("kms_data_key_reuse_period_seconds", "KmsDataKeyReusePeriodSeconds"),
                    ("sqs_managed_sse_enabled", "SqsManagedSseEnabled"), ("fifo_queue", "FifoQueue"),
                    ("content_based_deduplication", "ContentBasedDeduplication"),
                    ("redrive_policy", "RedrivePolicy"), ("redrive_allow_policy", "RedriveAllowPolicy"),
                    ("tags", "Tags")):
        put(P, cfn, b.a(tf))


def tr_queue_policy(b, P):
    url = b.a("queue_url")
    put(P, "Queues", [url] if url is not MISSING else MISSING)
    put(P, "PolicyDocument", b.a("policy"))


def tr_topic(b, P):
    put(P, "TopicName", b.a("name"))
    put(P, "DisplayName", b.a("display_name"))
    put(P, "KmsMasterKeyId", b.a("kms_master_key_id"))
    put(P, "FifoTopic", b.a("fifo_topic"))
    put(P, "Tags", b.a("tags"))


def tr_subscription(b, P):
    put(P, "TopicArn", b.a("topic_arn"))
    put(P, "Protocol", b.a("protocol"))
    put(P, "Endpoint", b.a("endpoint"))
    put(P, "RawMessageDelivery", b.a("raw_message_delivery"))
    put(P, "FilterPolicy", b.a("filter_policy"))


def tr_rule(b, P):
    put(P, "Name", b.a("name"))
    put(P, "Description", b.a("description"))
    put(P, "EventPattern", b.a("event_pattern"))
    put(P, "ScheduleExpression", b.a("schedule_expression"))
    put(P, "EventBusName", b.a("event_bus_name"))
    put(P, "RoleArn", b.a("role_arn"))
    put(P, "State", b.a("state"))
    enabled = b.a("is_enabled")
    if enabled is not MISSING:
        put(P, "State", "ENABLED" if enabled is True else ("DISABLED" if enabled is False else enabled))
    put(P, "Tags", b.a("tags"))


def tr_target(b, P):
    it = {}
    put(it, "Id", b.a("target_id"))
    put(it, "Arn", b.a("arn"))
    put(it, "RoleArn", b.a("role_arn"))
    put(it, "Input", b.a("input"))
    put(it, "InputPath", b.a("input_path"))
    for r in b.blocks("retry_policy"):
        put(it, "RetryPolicy.MaximumEventAgeInSeconds", r.a("maximum_event_age_in_seconds"))
        put(it, "RetryPolicy.MaximumRetryAttempts", r.a("maximum_retry_attempts"))
    for d in b.blocks("dead_letter_config"):
        put(it, "DeadLetterConfig.Arn", d.a("arn"))
    P.setdefault("Targets", []).append(it)


def tr_alarm(b, P):
    for tf, cfn in (("alarm_name", "AlarmName"), ("alarm_description", "AlarmDescription"),
                    ("comparison_operator", "ComparisonOperator"),
                    ("evaluation_periods", "EvaluationPeriods"),
                    ("datapoints_to_alarm", "DatapointsToAlarm"), ("metric_name", "MetricName"),
                    ("namespace", "Namespace"), ("period", "Period"), ("statistic", "Statistic"),
                    ("extended_statistic", "ExtendedStatistic"), ("threshold", "Threshold"),
                    ("treat_missing_data", "TreatMissingData"), ("actions_enabled", "ActionsEnabled"),
                    ("alarm_actions", "AlarmActions"), ("ok_actions", "OKActions"),
                    ("insufficient_data_actions", "InsufficientDataActions"), ("unit", "Unit"),
                    ("tags", "Tags")):
        put(P, cfn, b.a(tf))
    dims = b.a("dimensions")
    if isinstance(dims, dict):
        dims = [{"Name": k, "Value": v} for k, v in dims.items()]
    put(P, "Dimensions", dims)


def tr_log_group(b, P):
    put(P, "LogGroupName", b.a("name"))
    put(P, "RetentionInDays", b.a("retention_in_days"))
    put(P, "KmsKeyId", b.a("kms_key_id"))
    put(P, "LogGroupClass", b.a("log_group_class"))
    put(P, "Tags", b.a("tags"))


def tr_function(b, P):
    for tf, cfn in (("function_name", "FunctionName"), ("description", "Description"),
                    ("role", "Role"), ("runtime", "Runtime"), ("handler", "Handler"),
                    ("architectures", "Architectures"), ("memory_size", "MemorySize"),
                    ("timeout", "Timeout"), ("s3_bucket", "Code.S3Bucket"), ("s3_key", "Code.S3Key"),
                    ("s3_object_version", "Code.S3ObjectVersion"), ("image_uri", "Code.ImageUri"),
                    ("package_type", "PackageType"), ("kms_key_arn", "KmsKeyArn"),
                    ("layers", "Layers"),
                    ("reserved_concurrent_executions", "ReservedConcurrentExecutions"),
                    ("tags", "Tags")):
        put(P, cfn, b.a(tf))
    for e in b.blocks("environment"):
        put(P, "Environment.Variables", e.a("variables"))
    for t in b.blocks("tracing_config"):
        put(P, "TracingConfig.Mode", t.a("mode"))
    for d in b.blocks("dead_letter_config"):
        put(P, "DeadLetterConfig.TargetArn", d.a("target_arn"))
    for s in b.blocks("ephemeral_storage"):
        put(P, "EphemeralStorage.Size", s.a("size"))


def tr_esm(b, P):
    for tf, cfn in (("event_source_arn", "EventSourceArn"), ("function_name", "FunctionName"),
                    ("batch_size", "BatchSize"), ("enabled", "Enabled"),
                    ("function_response_types", "FunctionResponseTypes"),
                    ("maximum_batching_window_in_seconds", "MaximumBatchingWindowInSeconds"),
                    ("starting_position", "StartingPosition")):
        put(P, cfn, b.a(tf))
    for s in b.blocks("scaling_config"):
        put(P, "ScalingConfig.MaximumConcurrency", s.a("maximum_concurrency"))
    for f in b.blocks("filter_criteria"):
        put(P, "FilterCriteria.Filters", [{"Pattern": x.a("pattern")} for x in f.blocks("filter")])


TRANSLATORS = {
    "aws_s3_bucket": tr_bucket,
    "aws_s3_bucket_policy": tr_bucket_policy,
    "aws_kms_key": tr_key,
    "aws_kms_alias": tr_alias,
    "aws_iam_role": tr_role,
    "aws_iam_role_policy": tr_role_policy,
    "aws_sqs_queue": tr_queue,
    "aws_sqs_queue_policy": tr_queue_policy,
    "aws_sns_topic": tr_topic,
    "aws_sns_topic_subscription": tr_subscription,
    "aws_cloudwatch_event_rule": tr_rule,
    "aws_cloudwatch_metric_alarm": tr_alarm,
    "aws_cloudwatch_log_group": tr_log_group,
    "aws_lambda_function": tr_function,
    "aws_lambda_event_source_mapping": tr_esm,
}
# Provider v5 resources CloudFormation has inline: type -> (attribute naming the owner, owner's
# Terraform type, translator).
FOLDED = {
    "aws_s3_bucket_versioning": ("bucket", "aws_s3_bucket", tr_versioning),
    "aws_s3_bucket_server_side_encryption_configuration": ("bucket", "aws_s3_bucket", tr_sse),
    "aws_s3_bucket_public_access_block": ("bucket", "aws_s3_bucket", tr_pab),
    "aws_s3_bucket_lifecycle_configuration": ("bucket", "aws_s3_bucket", tr_lifecycle),
    "aws_s3_bucket_replication_configuration": ("bucket", "aws_s3_bucket", tr_replication),
    "aws_s3_bucket_notification": ("bucket", "aws_s3_bucket", tr_notification),
    "aws_cloudwatch_event_target": ("rule", "aws_cloudwatch_event_rule", tr_target),
}


class TfModel:
    """Each mapped Terraform instance as a CloudFormation-shaped resource."""

    def __init__(self, world):
        self.world = world
        self.props, self.meta, self.extra, self.skips = {}, {}, {}, {}
        self.problems = []  # (resource, setting, cfn, tf)
        self.unmapped = []
        owners = {}  # (tf type, name) -> address
        folded = []
        for cond, inst in world.all_instances():
            if inst.rtype in FOLDED:
                folded.append((cond, inst))
                continue
            if inst.rtype not in TRANSLATORS or inst.address not in ADDRESS_TO_LOGICAL:
                self.unmapped.append(inst.address)
                continue
            self.translate(cond, inst)
            if inst.kind in ("bucket", "rule"):
                owners[(inst.rtype, inst.name())] = inst.address
        for cond, inst in folded:
            key_attr, owner_type, tr = FOLDED[inst.rtype]
            blk = Blk(inst.block, inst.scope())
            owner_name = blk.a(key_attr)
            owner = owners.get((owner_type, owner_name))
            if owner is None:
                self.problems.append((inst.address, key_attr, "<a mapped %s>" % owner_type, scalar(owner_name)))
                continue
            logical = ADDRESS_TO_LOGICAL[owner]
            self.skips[logical].extend(checkov_skips(inst))
            COLLECT.append(None)
            try:
                tr(blk, self.props[logical])
            finally:
                COLLECT.pop()
            for k, v in blk.leftovers(TF_META).items():
                self.extra[logical]["Properties.%s(%s)" % (k, inst.rtype)] = v
            for k, v in self.lifecycle(blk, inst).items():
                self.extra[logical]["%s(%s)" % (k, inst.rtype)] = v
            if inst.region() != self.meta[logical]["Region"]:
                self.problems.append((logical, "Region(%s)" % inst.rtype, self.meta[logical]["Region"], inst.region()))
            if cond != self.meta[logical].get("Condition"):
                self.problems.append((logical, "Condition(%s)" % inst.rtype,
                                      self.meta[logical].get("Condition", "<absent>"), cond or "<absent>"))

    def lifecycle(self, blk, inst):
        out = {}
        for lc in blk.raw.get("lifecycle", []):
            for k, v in lc.items():
                if k.startswith("__"):
                    continue
                val = attr_of(lc, k)
                if k == "prevent_destroy" and val is True and inst.rtype not in FOLDED:
                    continue
                out["lifecycle.%s" % k] = scalar(val)
        return out

    def translate(self, cond, inst):
        logical = ADDRESS_TO_LOGICAL[inst.address]
        blk = Blk(inst.block, inst.scope())
        P = {}
        deps = set()
        COLLECT.append(deps)
        try:
            TRANSLATORS[inst.rtype](blk, P)
            explicit = attr_of(inst.block, "depends_on", None)
            if explicit:
                for d in ev(explicit, inst.scope()):
                    deps.update(dep_names(d))
        except EvalError as e:
            P["<error>"] = str(e)
        finally:
            COLLECT.pop()
        meta = {"Type": KIND_CFN_TYPE.get(inst.kind, inst.rtype), "Region": inst.region()}
        if cond is not None:
            meta["Condition"] = cond
        if deps:
            meta["DependsOn"] = scalar(sorted(deps))
        for lc in inst.block.get("lifecycle", []):
            if attr_of(lc, "prevent_destroy", False) is True:
                meta["DeletionPolicy"] = "Retain"
                meta["UpdateReplacePolicy"] = "Retain"
        self.props[logical] = P
        self.meta[logical] = meta
        self.skips[logical] = checkov_skips(inst)
        extra = {}
        for k, v in blk.leftovers(TF_META).items():
            extra["Properties.%s(%s)" % (k, inst.rtype)] = v
        extra.update(self.lifecycle(blk, inst))
        self.extra[logical] = extra

    def model(self, logical):
        out = {}
        flatten(normalize_props(self.props[logical]), "Properties", out)
        if self.skips[logical]:
            flatten({"checkov": {"skip": self.skips[logical]}}, "Metadata", out)
        out.update(self.meta[logical])
        out.update(self.extra[logical])
        return out


# ------------------------------------------------------------------------------------------
# Parameters / variables and outputs.

def tf_validation(var_name, block):
    """(AllowedPattern, AllowedValues) a variable's validation blocks express."""
    pattern = values = None
    for v in block.get("validation", []):
        cond = attr_of(v, "condition", "")
        try:
            node = parse_expr(strip_interp(cond))
        except EvalError:
            continue
        for n in _walk(node):
            if n[0] != "call" or len(n[2]) != 2 or not _is_var(n[2][1], var_name):
                continue
            if n[1] == "regex" and n[2][0][0] == "tmpl":
                pattern = n[2][0][1]
            if n[1] == "contains" and n[2][0][0] == "list":
                values = [x[1] for x in n[2][0][1]]
    return pattern, values


def _walk(n):
    yield n
    for c in n[1:]:
        if isinstance(c, tuple) and c and isinstance(c[0], str):
            yield from _walk(c)
        elif isinstance(c, list):
            for x in c:
                if isinstance(x, tuple) and x and isinstance(x[0], str):
                    yield from _walk(x)


def _is_var(n, name):
    return n == ("attr", ("ref", "var"), name)


def compare_parameters(cfn, tf, diff, notes):
    params = {}
    for tpl in cfn.templates:
        for name, spec in tpl.params.items():
            if name in params and params[name] != spec:
                diff("Parameters", name, "differs between the two templates", "-")
            params[name] = spec
    settings = 0
    seen = set()
    for name, spec in sorted(params.items()):
        if name in CROSS_STACK_PARAMS:
            notes.append("Parameters: %s: filled by the replica stack's output in CloudFormation, "
                         "a reference to %s in Terraform" % (name, CROSS_STACK_PARAMS[name][0]))
            continue
        v = snake(name)
        seen.add(v)
        block = tf.root.variables.get(v)
        if block is None:
            diff("Parameters", name, name, "<no variable %s>" % v)
            settings += 1
            continue
        tf_type = strip_interp(attr_of(block, "type", "<absent>"))
        pattern, values = tf_validation(v, block)
        tf_default = attr_of(block, "default")
        rows = [
            ("Type", {"String": "string", "Number": "number"}.get(spec.get("Type"), spec.get("Type")), tf_type),
            ("Default", scalar(spec["Default"]) if "Default" in spec else "<absent>",
             scalar(tf_default) if tf_default is not MISSING else "<absent>"),
            ("AllowedPattern", spec.get("AllowedPattern", "<absent>"), pattern or "<absent>"),
            ("AllowedValues", scalar(spec["AllowedValues"]) if "AllowedValues" in spec else "<absent>",
             scalar(values) if values is not None else "<absent>"),
        ]
        for key in sorted(set(spec) - {"Type", "Default", "Description", "AllowedPattern", "AllowedValues"}):
            rows.append((key, scalar(spec[key]), "<not compared by tf-matches-cfn>"))
        for setting, a, b in rows:
            settings += 1
            if a != b:
                if setting == "Default" and v in DEFAULT_EXCEPTIONS:
                    notes.append("Parameters: %s.Default: cloudformation=%s terraform=%s (on purpose: %s)"
                                 % (name, a, b, DEFAULT_EXCEPTIONS[v]))
                    continue
                diff("Parameters", "%s.%s" % (name, setting), a, b)
    for v in sorted(tf.root.variables):
        if v not in seen and v not in TF_ONLY_VARIABLES:
            settings += 1
            diff("Parameters", v, "<absent>", "variable %s" % v)
    return settings


def provider_key(pname, block):
    alias = attr_of(block, "alias", None)
    return "%s.%s" % (pname, alias) if alias else pname


def compare_providers(tf, diff, notes):
    """The providers' default_tags are the stacks' tags. CloudFormation gives a stack's tags
    to every resource in the stack that takes tags, and the Terraform provider merges its
    default_tags into every resource's tags. Stack tags are given when a stack is deployed
    and are not in the templates, so they are not compared per resource: each resource's own
    `tags` is compared with the template's resource-level Tags, and default_tags must be the
    same in every provider (both stacks get the same tags). A provider setting other than
    alias, region and default_tags, and a provider block in a called module, are
    differences."""
    settings = 0
    stack_tags = {}  # provider key -> {tag: value} (None: no default_tags)
    for pname, block, f in tf.root.provider_blocks:
        key = provider_key(pname, block)
        for k in sorted(block):
            if k.startswith("__") or k in PROVIDER_SETTINGS:
                continue
            settings += 1
            try:
                v = scalar(ev(attr_of(block, k), Scope(tf.root)))
            except EvalError as e:
                v = "<error: %s>" % e
            diff("Providers", "%s.%s" % (key, k), "<absent>", "%s (not compared by tf-matches-cfn)" % v)
        blocks = [b for b in block.get("default_tags", []) if isinstance(b, dict)]
        if len(blocks) > 1:
            diff("Providers", "%s.default_tags" % key, "one block", "%d blocks" % len(blocks))
        tags = None
        for b in blocks:
            for k in sorted(b):
                if k.startswith("__") or k == "tags":
                    continue
                settings += 1
                diff("Providers", "%s.default_tags.%s" % (key, k), "<absent>",
                     "%s (not compared by tf-matches-cfn)" % scalar(attr_of(b, k)))
            try:
                raw = attr_of(b, "tags", {})
                tags = ev(raw, Scope(tf.root))
            except EvalError as e:
                tags = {"<error>": str(e)}
            if not isinstance(tags, dict):
                tags = {"<not a map>": scalar(tags)}
        stack_tags[key] = tags
    for m in tf.root.all_modules():
        if m is not tf.root:
            for pname, block, f in m.provider_blocks:
                settings += 1
                diff("Providers", "%s%s" % (m.prefix, provider_key(pname, block)), "<absent>",
                     "a provider block in a called module (%s)" % os.path.relpath(f, tf.root.dir))
    keys = sorted({k for t in stack_tags.values() if t for k in t})
    for k in keys:
        settings += 1
        values = {p: scalar(t[k]) if t and k in t else "<absent>" for p, t in stack_tags.items()}
        if len(set(values.values())) > 1:
            diff("Stack tags", "default_tags.%s" % k, "<the same in every provider (both stacks)>",
                 ", ".join("%s=%s" % pv for pv in sorted(values.items())))
    if not keys and stack_tags:
        notes.append("Stack tags: no provider has default_tags; the resources get no stack tags")
    elif keys:
        first = next(t for t in stack_tags.values() if t)
        notes.append("Stack tags: the providers' default_tags %s are the stacks' tags (given when a "
                     "stack is deployed, not in the templates): not compared per resource"
                     % scalar({k: first[k] for k in keys if k in first}))
    return settings


def compare_outputs(cfn, tf, diff):
    want = {}
    settings = 0
    for tpl in cfn.templates:
        for name, spec in tpl.outputs.items():
            want[snake(name)] = (name, scalar(tpl.resolve(spec.get("Value"))))
            for key in sorted(set(spec) - {"Value", "Description"}):
                settings += 1
                diff("Outputs", "%s.%s" % (name, key), scalar(spec[key]), "<not compared by tf-matches-cfn>")
    for out in sorted(set(want) | set(tf.root.outputs)):
        settings += 1
        label = want[out][0] if out in want else out
        a = want[out][1] if out in want else "<absent>"
        if out in tf.root.outputs:
            try:
                b = scalar(ev(attr_of(tf.root.outputs[out], "value"), Scope(tf.root)))
            except EvalError as e:
                b = "<error: %s>" % e
        else:
            b = "<no output %s>" % out
        if a != b:
            diff("Outputs", label, a, b)
    return settings


# ------------------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tf-dir", default=os.path.join(REPO, "deploy", "terraform"))
    ap.add_argument("--cfn-dir", default=os.path.join(REPO, "deploy", "cloudformation"))
    ap.add_argument("--show", metavar="LOGICAL_ID", action="append",
                    help="print every normalized setting of this resource on both sides and exit")
    args = ap.parse_args(argv)

    try:
        cfn = CfnWorld(args.cfn_dir)
        tf = TfWorld(args.tf_dir)
        model = TfModel(tf)
    except (EvalError, OSError, yaml.YAMLError) as e:
        print("tf-matches-cfn: %s" % e, file=sys.stderr)
        return 2

    diffs = []
    notes = []

    def diff(resource, setting, a, b):
        diffs.append("%s: %s: cloudformation=%s terraform=%s" % (resource, setting, a, b))

    # Template sections this script does not compare.
    for tpl in cfn.templates:
        for key in sorted(set(tpl.doc) - {"AWSTemplateFormatVersion", "Description", "Parameters",
                                          "Conditions", "Resources", "Outputs"}):
            diff("Template %s" % os.path.basename(tpl.path), key, "<present>", "<not compared by tf-matches-cfn>")

    if args.show:
        for logical in args.show:
            tpl = cfn.template_of(logical)
            a = tpl.model(logical) if tpl else {}
            b = model.model(logical) if logical in model.props else {}
            print("== %s (%s)" % (logical, MAPPING.get(logical, "<unmapped>")))
            for k in sorted(set(a) | set(b)):
                va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
                print("  %s %s: cloudformation=%s%s" % (" " if va == vb else "!", k, va,
                                                         "" if va == vb else " terraform=%s" % vb))
        return 0

    # Every .tf file must belong to the root module or to a module it calls.
    used = {os.path.abspath(f) for m in tf.root.all_modules() for f in m.files}
    for f in sorted(glob.glob(os.path.join(args.tf_dir, "**", "*.tf"), recursive=True)):
        if os.path.abspath(f) not in used:
            diff("Terraform", os.path.relpath(f, args.tf_dir), "<absent>", "a file no module call uses")

    compared = 0
    settings = 0
    cfn_ids = {}
    for tpl in cfn.templates:
        for logical in tpl.resources:
            cfn_ids[logical] = tpl
    for logical in sorted(cfn_ids):
        if logical not in MAPPING:
            diff(logical, "resource", cfn_ids[logical].resources[logical].get("Type"),
                 "<no counterpart in tools/tf-matches-cfn.py's MAPPING>")
            continue
        if logical not in model.props:
            diff(logical, "resource", cfn_ids[logical].resources[logical].get("Type"),
                 "<no Terraform resource %s>" % MAPPING[logical])
            continue
        compared += 1
        a = cfn_ids[logical].model(logical)
        b = model.model(logical)
        for k in sorted(set(a) | set(b)):
            settings += 1
            va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
            if va != vb:
                diff(logical, k, va, vb)
    for logical, address in sorted(MAPPING.items()):
        if logical not in cfn_ids and logical in model.props:
            diff(logical, "resource", "<absent>", address)
    for address in sorted(model.unmapped):
        diff(address, "resource", "<absent>", "a Terraform resource with no CloudFormation counterpart")
    for resource, setting, a, b in model.problems:
        diff(resource, setting, a, b)

    settings += compare_parameters(cfn, tf, diff, notes)
    settings += compare_providers(tf, diff, notes)
    settings += compare_outputs(cfn, tf, diff)

    for d in diffs:
        print(d)
    for n in notes:
        print("note: " + n)
    print("tf-matches-cfn: %d resources compared, %d settings, %d differences"
          % (compared, settings, len(diffs)))
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
