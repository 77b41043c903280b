#!/usr/bin/python3
"""boto3 against kmsd's HTTPS endpoint, as a user would (called by
tests/test_http.c with a running kmsd).

Environment: KMSD_ENDPOINT (https://127.0.0.1:PORT), KMSD_CA (the
server's certificate), ADMIN_AKID/ADMIN_SECRET (principal: the user
running the test, so IPC and HTTP are one caller), BOB_AKID/BOB_SECRET
(user:bob), CLIENT_CERT/CLIENT_KEY (a client certificate, CN alice),
IPC_KEY, IPC_CT (a ciphertext made over IPC, base64, context via=ipc),
HTTP_CT_OUT (where to write one for IPC to decrypt).

Prints one line per check; exits non-zero on the first failure.
"""
import base64
import datetime as real_datetime
import http.client
import json
import os
import re
import ssl
import sys
import types
import urllib.parse

import boto3
import botocore
import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

E = os.environ
ENDPOINT = E["KMSD_ENDPOINT"]
ARN_PREFIX = "arn:aws:kms:local:000000000000:"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-"
                  r"[0-9a-f]{12}$")


def client(akid=None, secret=None, region="local", **cfg):
    kw = dict(endpoint_url=ENDPOINT, region_name=region, verify=E["KMSD_CA"])
    if akid is not None:
        kw.update(aws_access_key_id=akid, aws_secret_access_key=secret)
    return boto3.client("kms", config=Config(retries={"max_attempts": 1},
                                             **cfg), **kw)


def ok(what):
    print("ok:", what, flush=True)


def expect(code, fn, *a, **k):
    try:
        fn(*a, **k)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, "%s: wanted %s, got %s (%s)" % (
            fn.__name__, code, got, e)
        rid = e.response["ResponseMetadata"].get("RequestId", "")
        assert UUID.match(rid), "error without x-amzn-RequestId: %r" % rid
        return e
    raise AssertionError("%s: no %s" % (fn.__name__, code))


admin = client(E["ADMIN_AKID"], E["ADMIN_SECRET"])
bob = client(E["BOB_AKID"], E["BOB_SECRET"])

# CreateKey, DescribeKey: one well-formed ARN.
r = admin.create_key(Description="boto3")
assert UUID.match(r["ResponseMetadata"]["RequestId"])
k = r["KeyMetadata"]
kid, arn = k["KeyId"], k["Arn"]
assert arn == ARN_PREFIX + "key/" + kid, arn
d = admin.describe_key(KeyId=arn)["KeyMetadata"]
assert d["KeyId"] == kid and d["KeyState"] == "Enabled"
ok("CreateKey, DescribeKey by ARN")

# ListKeys with paging.
for i in range(3):
    admin.create_key(Description="page%d" % i)
ids, pages = [], 0
for page in admin.get_paginator("list_keys").paginate(
        PaginationConfig={"PageSize": 2}):
    pages += 1
    ids += [x["KeyId"] for x in page["Keys"]]
    assert len(page["Keys"]) <= 2
assert len(ids) == len(set(ids)) and kid in ids and len(ids) >= 4, ids
assert pages >= 2
first = admin.list_keys(Limit=1)
assert first["Truncated"] and len(first["Keys"]) == 1
ok("ListKeys paging: %d keys in %d pages" % (len(ids), pages))

# Encrypt / Decrypt with an encryption context.
ctx = {"purpose": "test", "team": "blue"}
ct = admin.encrypt(KeyId=kid, Plaintext=b"hello", EncryptionContext=ctx)
assert ct["KeyId"] == arn
pt = admin.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext=ctx)
assert pt["Plaintext"] == b"hello" and pt["KeyId"] == arn
pt = admin.decrypt(CiphertextBlob=ct["CiphertextBlob"], EncryptionContext=ctx,
                   KeyId=arn)
assert pt["Plaintext"] == b"hello"
expect("InvalidCiphertextException", admin.decrypt,
       CiphertextBlob=ct["CiphertextBlob"], EncryptionContext={"team": "red"})
ok("Encrypt/Decrypt with context")

# GenerateDataKey, both forms, and without plaintext.
dk = admin.generate_data_key(KeyId=kid, KeySpec="AES_256",
                             EncryptionContext=ctx)
assert len(dk["Plaintext"]) == 32 and dk["KeyId"] == arn
assert admin.decrypt(CiphertextBlob=dk["CiphertextBlob"],
                     EncryptionContext=ctx)["Plaintext"] == dk["Plaintext"]
dk = admin.generate_data_key(KeyId=kid, NumberOfBytes=16)
assert len(dk["Plaintext"]) == 16
nk = admin.generate_data_key_without_plaintext(KeyId=kid, KeySpec="AES_128")
assert "Plaintext" not in nk and nk["KeyId"] == arn
expect("ValidationException", admin.generate_data_key, KeyId=kid)
ok("GenerateDataKey (KeySpec, NumberOfBytes, WithoutPlaintext)")

# ReEncrypt to another key and context.
k2 = admin.create_key()["KeyMetadata"]
re_ = admin.re_encrypt(CiphertextBlob=ct["CiphertextBlob"],
                       SourceEncryptionContext=ctx,
                       DestinationKeyId=k2["KeyId"],
                       DestinationEncryptionContext={"x": "y"})
assert re_["KeyId"] == k2["Arn"] and re_["SourceKeyId"] == arn
assert admin.decrypt(CiphertextBlob=re_["CiphertextBlob"],
                     EncryptionContext={"x": "y"})["Plaintext"] == b"hello"
ok("ReEncrypt")

assert len(admin.generate_random(NumberOfBytes=64)["Plaintext"]) == 64
ok("GenerateRandom")

# Aliases, by name and by ARN.
admin.create_alias(AliasName="alias/boto3-app", TargetKeyId=kid)
al = [a for a in admin.list_aliases()["Aliases"]
      if a["AliasName"] == "alias/boto3-app"]
assert al and al[0]["AliasArn"] == ARN_PREFIX + "alias/boto3-app"
assert al[0]["TargetKeyId"] == kid
assert admin.encrypt(KeyId="alias/boto3-app", Plaintext=b"x")["KeyId"] == arn
assert admin.encrypt(KeyId=al[0]["AliasArn"], Plaintext=b"x")["KeyId"] == arn
expect("AlreadyExistsException", admin.create_alias,
       AliasName="alias/boto3-app", TargetKeyId=kid)
admin.update_alias(AliasName="alias/boto3-app", TargetKeyId=k2["KeyId"])
assert admin.describe_key(KeyId="alias/boto3-app")["KeyMetadata"][
    "KeyId"] == k2["KeyId"]
admin.delete_alias(AliasName="alias/boto3-app")
expect("NotFoundException", admin.describe_key, KeyId="alias/boto3-app")
ok("aliases")

# A key policy's denial, as AccessDeniedException in a ClientError; a
# grant lets bob in, revoking it shuts him out again.
e = expect("AccessDeniedException", bob.encrypt, KeyId=kid, Plaintext=b"x")
assert isinstance(e, ClientError) and "user:bob" in str(e), str(e)
g = admin.create_grant(KeyId=kid, GranteePrincipal="user:bob",
                       Operations=["Encrypt", "Decrypt"])
bct = bob.encrypt(KeyId=kid, Plaintext=b"bob's")
assert bob.decrypt(CiphertextBlob=bct["CiphertextBlob"])["Plaintext"] == \
    b"bob's"
assert any(x["GrantId"] == g["GrantId"]
           for x in admin.list_grants(KeyId=kid)["Grants"])
admin.revoke_grant(KeyId=kid, GrantId=g["GrantId"])
expect("AccessDeniedException", bob.encrypt, KeyId=kid, Plaintext=b"x")
ok("policy denial (AccessDeniedException), grants")

# A disabled key.
admin.disable_key(KeyId=kid)
assert admin.describe_key(KeyId=kid)["KeyMetadata"]["KeyState"] == "Disabled"
expect("DisabledException", admin.encrypt, KeyId=kid, Plaintext=b"x")
expect("DisabledException", admin.decrypt,
       CiphertextBlob=ct["CiphertextBlob"], EncryptionContext=ctx)
admin.enable_key(KeyId=kid)
admin.encrypt(KeyId=kid, Plaintext=b"x")
ok("disabled key")

# Each SigV4 failure, as the SDK raises it.
expect("MissingAuthenticationTokenException",
       client(signature_version=botocore.UNSIGNED).list_keys)
expect("UnrecognizedClientException",
       client("KMSDNOSUCHKEY0000000", "x").list_keys)
expect("InvalidSignatureException",
       client(E["ADMIN_AKID"], "not-the-secret").list_keys)
expect("InvalidSignatureException",
       client(E["ADMIN_AKID"], E["ADMIN_SECRET"], region="us-east-1").list_keys)
# A region http_regions lists is accepted; ARNs keep kmsd's own.
west = client(E["ADMIN_AKID"], E["ADMIN_SECRET"], region="eu-west-3")
assert west.list_keys(Limit=1)["Keys"][0]["KeyArn"].startswith(ARN_PREFIX)


class _Late(real_datetime.datetime):
    @classmethod
    def utcnow(cls):
        return real_datetime.datetime.utcnow() - real_datetime.timedelta(
            minutes=10)


def sign_late(request, **kw):
    """Sign the request again, as if ten minutes ago."""
    hdrs = {k: v.decode() if isinstance(v, bytes) else v
            for k, v in request.headers.items()
            if k not in ("Authorization", "X-Amz-Date")}
    again = AWSRequest(method=request.method, url=request.url,
                       data=request.body, headers=hdrs)
    saved = botocore.auth.datetime
    botocore.auth.datetime = types.SimpleNamespace(datetime=_Late)
    try:
        botocore.auth.SigV4Auth(Credentials(E["ADMIN_AKID"],
                                            E["ADMIN_SECRET"]),
                                "kms", "local").add_auth(again)
    finally:
        botocore.auth.datetime = saved
    for k in ("Authorization", "X-Amz-Date"):
        request.headers[k] = again.headers[k]


late = client(E["ADMIN_AKID"], E["ADMIN_SECRET"])
late.meta.events.register("before-send.kms.*", sign_late)
e = expect("InvalidSignatureException", late.list_keys)
assert "Signature expired" in str(e), str(e)


def cut_signature(request, **kw):
    a = request.headers["Authorization"]
    if isinstance(a, bytes):
        a = a.decode()
    request.headers["Authorization"] = a.split(",")[0]


mangled = client(E["ADMIN_AKID"], E["ADMIN_SECRET"])
mangled.meta.events.register("before-send.kms.*", cut_signature)
expect("IncompleteSignatureException", mangled.list_keys)
ok("SigV4 failures: Missing, Unrecognized, InvalidSignature (secret, "
   "region, expired), Incomplete")

# A client certificate: its subject is the caller, no signature needed.
cert = client(signature_version=botocore.UNSIGNED,
              client_cert=(E["CLIENT_CERT"], E["CLIENT_KEY"]))
ck = cert.create_key(Description="by certificate")["KeyMetadata"]
cct = cert.encrypt(KeyId=ck["KeyId"], Plaintext=b"cert")
assert cert.decrypt(CiphertextBlob=cct["CiphertextBlob"])["Plaintext"] == \
    b"cert"
e = expect("AccessDeniedException", bob.encrypt, KeyId=ck["KeyId"],
           Plaintext=b"x")
e = expect("AccessDeniedException", cert.encrypt, KeyId=kid, Plaintext=b"x")
assert "cert:alice" in str(e), str(e)
ok("client certificate → cert:alice")

# A user:<name> access key is that local user, groups included: a policy
# that lets the admin's group encrypt lets the admin, over HTTP too.
def policy(*extra):
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "cert:alice", "Action": "kms:*",
         "Resource": "*"}] + list(extra)})


cert.put_key_policy(KeyId=ck["KeyId"], PolicyName="default", Policy=policy())
expect("AccessDeniedException", admin.encrypt, KeyId=ck["KeyId"],
       Plaintext=b"x")
cert.put_key_policy(KeyId=ck["KeyId"], PolicyName="default", Policy=policy(
    {"Effect": "Allow", "Principal": E["ADMIN_GROUP"],
     "Action": "kms:Encrypt", "Resource": "*"}))
assert admin.encrypt(KeyId=ck["KeyId"], Plaintext=b"x")["KeyId"] == ck["Arn"]
expect("AccessDeniedException", bob.encrypt, KeyId=ck["KeyId"],
       Plaintext=b"x")
ok("user:<name> over HTTP carries the account's groups (%s)" %
   E["ADMIN_GROUP"])

# Batch, kmsd's own operation, signed like any other.
def raw(target, body, creds):
    url = urllib.parse.urlparse(ENDPOINT)
    req = AWSRequest(method="POST", url=ENDPOINT + "/", data=body, headers={
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "TrentService." + target})
    botocore.auth.SigV4Auth(creds, "kms", "local").add_auth(req)
    ctx_ = ssl.create_default_context(cafile=E["KMSD_CA"])
    c = http.client.HTTPSConnection(url.hostname, url.port, context=ctx_)
    c.request("POST", "/", body=body, headers=dict(req.headers.items()))
    resp = c.getresponse()
    out = (resp.status, dict(resp.getheaders()), resp.read())
    c.close()
    return out


creds = Credentials(E["ADMIN_AKID"], E["ADMIN_SECRET"])
status, hdrs, body = raw("Batch", json.dumps({"Requests": [
    {"Action": "GenerateDataKey", "KeyId": kid, "NumberOfBytes": 32},
    {"Action": "Encrypt", "KeyId": "alias/none", "Plaintext": "eA=="},
    {"Action": "Encrypt", "KeyId": kid, "Plaintext": "eA=="}]}).encode(), creds)
assert status == 200, (status, body)
rs = json.loads(body)["Responses"]
assert rs[0]["KeyId"] == arn and len(base64.b64decode(rs[0]["Plaintext"])) == 32
assert rs[1]["__type"] == "NotFoundException"
assert rs[2]["KeyId"] == arn
assert UUID.match(hdrs.get("x-amzn-RequestId", "")), hdrs
ok("Batch")

# Bad requests: typed errors and AWS statuses.
status, hdrs, body = raw("NoSuchOperation", b"{}", creds)
assert status == 400 and json.loads(body)["__type"] == \
    "UnknownOperationException", (status, body)
status, hdrs, body = raw("Encrypt", b"{\"KeyId\": ", creds)
assert status == 400 and json.loads(body)["__type"] == \
    "SerializationException", (status, body)
assert UUID.match(hdrs.get("x-amzn-RequestId", "")), hdrs
ok("unknown operation, malformed body")

# A ciphertext made over IPC decrypts here, and one made here goes back.
p = admin.decrypt(CiphertextBlob=base64.b64decode(E["IPC_CT"]),
                  EncryptionContext={"via": "ipc"})
assert p["Plaintext"] == b"from-ipc" and p["KeyId"].endswith(E["IPC_KEY"])
hct = admin.encrypt(KeyId=E["IPC_KEY"], Plaintext=b"from-http",
                    EncryptionContext={"via": "http"})
with open(E["HTTP_CT_OUT"], "w") as f:
    f.write(base64.b64encode(hct["CiphertextBlob"]).decode())
ok("IPC ciphertext decrypted over HTTP")
print("boto3: all passed")
