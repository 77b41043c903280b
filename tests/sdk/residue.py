#!/usr/bin/python3
"""After data keys and plaintexts went over HTTPS, none of them is left in
kmsd's memory (called by tests/test_http.c; environment as drive_boto3.py
plus KMSD_PID).  The keep-alive connection that carried them is still
open when kmsd's every writable mapping is read through /proc/PID/mem and
searched for each, raw and in base64."""
import base64
import os
import re
import time

import boto3
from botocore.config import Config

E = os.environ
c = boto3.client("kms", endpoint_url=E["KMSD_ENDPOINT"], region_name="local",
                 verify=E["KMSD_CA"], aws_access_key_id=E["ADMIN_AKID"],
                 aws_secret_access_key=E["ADMIN_SECRET"],
                 config=Config(retries={"max_attempts": 1}))
key = c.create_key(Description="residue")["KeyMetadata"]["KeyId"]
secrets = []
for i in range(8):
    dk = c.generate_data_key(KeyId=key, NumberOfBytes=32)
    assert c.decrypt(CiphertextBlob=dk["CiphertextBlob"])["Plaintext"] == \
        dk["Plaintext"]
    secrets.append(dk["Plaintext"])
    pt = os.urandom(32)
    ct = c.encrypt(KeyId=key, Plaintext=pt)["CiphertextBlob"]
    assert c.decrypt(CiphertextBlob=ct)["Plaintext"] == pt
    secrets.append(pt)
time.sleep(0.3)

CHUNK = 4 << 20
pid = int(E["KMSD_PID"])
hits = []
with open("/proc/%d/maps" % pid) as maps, \
        open("/proc/%d/mem" % pid, "rb", 0) as mem:
    for line in maps:
        m = re.match(r"([0-9a-f]+)-([0-9a-f]+) (\S+)", line)
        lo, hi, perms = int(m.group(1), 16), int(m.group(2), 16), m.group(3)
        # Reservations of terabytes (ASan's shadow) hold no heap.
        if not perms.startswith("rw") or hi - lo > 1 << 32:
            continue
        # 4 MiB at a time, overlapping so that no needle is cut in two.
        off = lo
        while off < hi:
            try:
                mem.seek(off)
                data = mem.read(min(hi - off, CHUNK + 63))
            except OSError:
                break       # guard pages and the like
            if not data:
                break
            for i, s in enumerate(secrets):
                for form, needle in (("raw", s),
                                     ("base64", base64.b64encode(s))):
                    if needle in data:
                        hits.append((i, form, line.strip()))
            off += CHUNK
assert not hits, "left in kmsd's memory: %s" % hits[:5]
print("ok: %d plaintexts and data keys, none left in kmsd's memory "
      "(connection still open)" % len(secrets))
