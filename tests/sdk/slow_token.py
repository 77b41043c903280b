#!/usr/bin/python3
"""A slow operation over HTTPS holds up only itself (called by
tests/test_http.c; environment as drive_boto3.py plus HOLD_FILE, the file
that makes tests/p11shim hold C_GenerateKey while it exists).

CreateKey is held inside the token; meanwhile another connection's
GenerateDataKey, Encrypt, Decrypt, GenerateRandom and DescribeKey are all
answered (each within a read timeout far shorter than the hold), and the
CreateKey is still waiting when they are.  Released, it completes.  The
x-amzn-RequestId of a quick call and of the held one go to
$WORK/request-ids ("Operation id" lines), for the audit log to be
searched for them."""
import os
import threading
import time

import boto3
from botocore.config import Config

E = os.environ
HOLD = E["HOLD_FILE"]


def kms(read_timeout):
    return boto3.client(
        "kms", endpoint_url=E["KMSD_ENDPOINT"], region_name="local",
        verify=E["KMSD_CA"], aws_access_key_id=E["ADMIN_AKID"],
        aws_secret_access_key=E["ADMIN_SECRET"],
        config=Config(retries={"total_max_attempts": 1},
                      read_timeout=read_timeout, connect_timeout=5))


c = kms(5)
key = c.create_key(Description="slow-token")["KeyMetadata"]["KeyId"]
ct = c.encrypt(KeyId=key, Plaintext=b"meanwhile")["CiphertextBlob"]

open(HOLD, "w").close()
held = {}


def create():
    try:
        held["key"] = kms(60).create_key(Description="held")
    except Exception as e:  # reported below
        held["error"] = e


t = threading.Thread(target=create)
try:
    t.start()
    time.sleep(1.0)
    assert t.is_alive(), "CreateKey was not held: %s" % held
    t0 = time.monotonic()
    for i in range(10):
        dk = c.generate_data_key(KeyId=key, KeySpec="AES_256")
        assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] \
            == dk["Plaintext"]
        assert c.decrypt(CiphertextBlob=ct)["Plaintext"] == b"meanwhile"
        assert len(c.generate_random(NumberOfBytes=16)["Plaintext"]) == 16
        assert c.describe_key(KeyId=key)["KeyMetadata"]["KeyId"] == key
    took = time.monotonic() - t0
    quick_id = dk["ResponseMetadata"]["RequestId"]
    assert t.is_alive(), "CreateKey finished while the token held it"
    print("ok: 50 quick calls answered in %.2f s while CreateKey was held"
          % took, flush=True)
finally:
    if os.path.exists(HOLD):
        os.unlink(HOLD)
t.join(60)
assert not t.is_alive(), "CreateKey never finished"
assert "key" in held, "CreateKey failed: %s" % held.get("error")
assert held["key"]["KeyMetadata"]["Description"] == "held"
with open(os.path.join(E["WORK"], "request-ids"), "w") as f:
    f.write("GenerateDataKey %s\nCreateKey %s\n"
            % (quick_id, held["key"]["ResponseMetadata"]["RequestId"]))
print("ok: the held CreateKey completed once released", flush=True)
