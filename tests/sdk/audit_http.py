#!/usr/bin/python3
"""Every HTTPS request has its audit record, refused ones too (called by
tests/test_http.c; environment as drive_boto3.py).

For a call that succeeds, one refused by each SigV4 check, a malformed
body from a verified caller, a body over the limit and a request for a
path kmsd does not serve: the record whose requestID is the
x-amzn-RequestId the caller was given names the operation, the outcome
(errorCode), where the caller came from (transport, sourceIPAddress,
userAgent) and the access key it named, verified or not; a refused
caller is "Unknown", never the principal it claimed.  Requests closed
unanswered (a chunked body past the limit, a client that hangs up
mid-body) are recorded as ConnectionClosed.  A User-Agent with bytes
outside printable ASCII is recorded with those bytes as '?', and every
line of the log stays valid JSON."""
import glob
import http.client
import json
import os
import ssl
import time

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError

E = os.environ
AUDIT = os.path.join(E["WORK"], "audit")
AKID = E["ADMIN_AKID"]
ME = E["ADMIN_PRINCIPAL"]
UA = b"kmsd-audit-test/1.0 \xff\x01 end"


def client(akid=None, secret=None, **cfg):
    kw = dict(endpoint_url=E["KMSD_ENDPOINT"], region_name="local",
              verify=E["KMSD_CA"])
    if akid is not None:
        kw.update(aws_access_key_id=akid, aws_secret_access_key=secret)
    c = boto3.client("kms", config=Config(retries={"max_attempts": 1},
                                          **cfg), **kw)

    def odd_agent(request, **k):
        # After signing: SigV4 does not sign User-Agent.
        request.headers["User-Agent"] = UA
    c.meta.events.register("before-send.kms.*", odd_agent)
    return c


def refused(code, fn, *a, **k):
    try:
        fn(*a, **k)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        assert got == code, "wanted %s, got %s (%s)" % (code, got, e)
        return e.response["ResponseMetadata"]["RequestId"]
    raise AssertionError("%s: no error, wanted %s" % (fn.__name__, code))


def records():
    out = []
    for path in sorted(glob.glob(os.path.join(AUDIT, "kmsd-audit-*.jsonl"))):
        with open(path, "rb") as f:
            for line in f:
                out.append(json.loads(line.decode("utf-8")))  # strict
    return out


def record(field, value):
    """The one record whose field is value (written at most a tick after
    the reply)."""
    deadline = time.monotonic() + 5
    while True:
        found = [r for r in records() if r.get(field) == value]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(found) == 1, "%d records with %s %s" % (len(found), field,
                                                       value)
    return found[0]


def check(rid, op, error, principal, akid):
    r = record("requestID", rid)
    u = r["userIdentity"]
    assert r["eventName"] == op, r
    assert r.get("errorCode") == error, r
    assert u["transport"] == "https", r
    assert r["sourceIPAddress"] == "127.0.0.1", r
    if principal is None:
        assert u["type"] == "Unknown" and "principalId" not in u, r
    else:
        assert u["principalId"] == principal, r
    assert u.get("accessKeyId") == akid, r
    if error is not None:
        assert r["requestParameters"] == {} or op == "Unknown", r
    return r


# A call that succeeds: principal, access key, address and User-Agent.
admin = client(AKID, E["ADMIN_SECRET"])
resp = admin.generate_random(NumberOfBytes=8)
r = check(resp["ResponseMetadata"]["RequestId"], "GenerateRandom", None, ME,
          AKID)
assert r["userAgent"] == "kmsd-audit-test/1.0 ?? end", r
assert r["requestParameters"] == {"numberOfBytes": 8}, r
print("ok: a call's record names its access key and User-Agent", flush=True)

# Each SigV4 refusal: the caller is Unknown, the key it named recorded.
check(refused("InvalidSignatureException",
              client(AKID, "not-the-secret").list_keys),
      "ListKeys", "InvalidSignatureException", None, AKID)
check(refused("UnrecognizedClientException",
              client("KMSDNOSUCHKEY0000000", "x").list_keys),
      "ListKeys", "UnrecognizedClientException", None,
      "KMSDNOSUCHKEY0000000")
check(refused("MissingAuthenticationTokenException",
              client(signature_version=botocore.UNSIGNED).describe_key,
              KeyId="alias/nothing"),
      "DescribeKey", "MissingAuthenticationTokenException", None, None)
print("ok: SigV4 refusals recorded", flush=True)

# A malformed body, signed: the caller is known, the request refused.
bad = client(AKID, E["ADMIN_SECRET"])


def garble(request, **k):
    request.data = b'{"KeyId": '


bad.meta.events.register("before-sign.kms.*", garble)
check(refused("SerializationException", bad.describe_key, KeyId="x"),
      "DescribeKey", "SerializationException", ME, AKID)
print("ok: a malformed body from a verified caller recorded", flush=True)

# Refused before the body is read, and a path kmsd does not serve.
ctx = ssl.create_default_context(cafile=E["KMSD_CA"])


def opened(method, path, headers):
    """A connection with a request's headers sent, no body yet."""
    c = http.client.HTTPSConnection("127.0.0.1", int(E["KMSD_PORT"]),
                                    context=ctx, timeout=10)
    c.putrequest(method, path)
    for k, v in headers.items():
        c.putheader(k, v)
    c.endheaders()
    return c


def raw(method, path, headers):
    c = opened(method, path, headers)
    a = c.getresponse()
    body = json.loads(a.read())
    c.close()
    return a.status, body["__type"], a.getheader("x-amzn-RequestId")


st, typ, rid = raw("POST", "/", {"X-Amz-Target": "TrentService.Encrypt",
                                 "Content-Type": "application/x-amz-json-1.1",
                                 "Content-Length": "2000000"})
assert (st, typ) == (413, "ValidationException"), (st, typ)
check(rid, "Encrypt", "ValidationException", None, None)
st, typ, rid = raw("GET", "/nothing-here", {})
assert (st, typ) == (404, "UnknownOperationException"), (st, typ)
check(rid, "Unknown", "UnknownOperationException", None, None)
print("ok: refusals before the body and off the API path recorded",
      flush=True)


# Closed unanswered: a chunked body past the limit (kmsd closes the
# connection), a client that hangs up mid-body.
def cut(agent, headers, body, chunks):
    hdrs = {"X-Amz-Target": "TrentService.Encrypt",
            "Content-Type": "application/x-amz-json-1.1",
            "User-Agent": agent}
    hdrs.update(headers)
    c = opened("POST", "/", hdrs)
    try:
        c.send(body)
        if chunks == 0:
            return  # hangs up mid-body
        for _ in range(chunks):
            c.send(b"10000\r\n" + b"a" * 65536 + b"\r\n")
        a = c.getresponse()
        raise AssertionError("answered: %d" % a.status)
    except (OSError, http.client.HTTPException):
        pass  # closed by kmsd, as it should be
    finally:
        c.close()


cut("kmsd-cut-over-limit", {"Transfer-Encoding": "chunked"}, b"", 40)
r = record("userAgent", "kmsd-cut-over-limit")
assert r["eventName"] == "Encrypt", r
assert r["errorCode"] == "ConnectionClosed", r
assert "exceeds" in r["errorMessage"], r
assert r["userIdentity"]["type"] == "Unknown", r
cut("kmsd-cut-closed", {"Content-Length": "1000"}, b'{"KeyId": ', 0)
r = record("userAgent", "kmsd-cut-closed")
assert r["errorCode"] == "ConnectionClosed", r
assert "closed before" in r["errorMessage"], r
print("ok: requests closed unanswered recorded", flush=True)

records()  # every line of every file still parses
